//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/futexlab/robustlock/event"
)

// channelFlags are the flags every event command shares: where the
// channel lives, and the sizes a command that creates it gives it.
type channelFlags struct {
	dir                     string
	capacity, max, requests int
}

func (f *channelFlags) options() []event.Option {
	opts := []event.Option{event.Dir(f.dir)}
	if f.capacity > 0 {
		opts = append(opts, event.Capacity(f.capacity))
	}
	if f.max > 0 {
		opts = append(opts, event.MaxMessage(f.max))
	}
	if f.requests > 0 {
		opts = append(opts, event.Requests(f.requests))
	}
	return opts
}

// parseEvent parses an event command's flags; want is the number of
// positional arguments (NAME, and MSG for pub and req).
func parseEvent(name, synopsis, explain string, args []string, want int, stdout, stderr io.Writer,
	more func(fs interface {
		IntVar(*int, string, int, string)
	})) (*channelFlags, []string, int, bool) {
	fs := newFlagSet(name, synopsis, explain, stdout, stderr)
	cf := &channelFlags{}
	fs.StringVar(&cf.dir, "dir", "/dev/shm", "directory of the channel's segment")
	fs.IntVar(&cf.capacity, "capacity", 0, "messages kept, if this creates the channel (default 64)")
	fs.IntVar(&cf.max, "max", 0, "largest message in bytes, if this creates the channel (default 1024)")
	fs.IntVar(&cf.requests, "requests", 0, "request slots, if this creates the channel (default 16)")
	if more != nil {
		more(fs)
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, nil, flagError(stderr, name, err), false
	}
	if len(pos) != want {
		return nil, nil, failf(stderr, exitUsage, "%s: want %s (see 'robustlock %s -h')", name, synopsis, name), false
	}
	return cf, pos, 0, true
}

// interrupted returns a context cancelled by Ctrl-C or SIGTERM.
func interrupted() (context.Context, func()) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runPub(args []string, stdout, stderr io.Writer) int {
	cf, pos, st, ok := parseEvent("pub", "[flags] NAME MSG",
		"Publish MSG on the event channel NAME (created if it does not exist); every subscriber gets it.",
		args, 2, stdout, stderr, nil)
	if !ok {
		return st
	}
	c, err := event.Open(pos[0], cf.options()...)
	if err != nil {
		return failf(stderr, exitFail, "pub: %v", err)
	}
	defer c.Close()
	if err := c.Publish([]byte(pos[1])); err != nil {
		return failf(stderr, exitFail, "pub: %v", err)
	}
	return exitOK
}

func runSub(args []string, stdout, stderr io.Writer) int {
	var n int
	var asJSON bool
	cf, pos, st, ok := parseEventJSON("sub", "[flags] NAME",
		"Print each message published on NAME from now on, one line each (--json: one JSON object each,\n"+
			"with its sequence number; laps are reported as {\"missed\": N}). Stops after -n messages, or on Ctrl-C.",
		args, stdout, stderr, &n, &asJSON)
	if !ok {
		return st
	}
	c, err := event.Open(pos[0], cf.options()...)
	if err != nil {
		return failf(stderr, exitFail, "sub: %v", err)
	}
	defer c.Close()
	ctx, stop := interrupted()
	defer stop()
	s, err := c.Subscribe()
	if err != nil {
		return failf(stderr, exitFail, "sub: %v", err)
	}
	enc := json.NewEncoder(stdout)
	buf := make([]byte, 0, c.MaxMessage())
	for got := 0; n == 0 || got < n; {
		seq := s.Seq()
		msg, err := s.NextInto(ctx, buf)
		var lap *event.LappedError
		switch {
		case errors.As(err, &lap):
			if asJSON {
				enc.Encode(map[string]any{"missed": lap.Missed})
			} else {
				fmt.Fprintf(stderr, "robustlock: sub: lapped, %d messages missed\n", lap.Missed)
			}
			continue
		case ctx.Err() != nil:
			return exitInterrupted
		case err != nil:
			return failf(stderr, exitFail, "sub: %v", err)
		}
		got++
		if asJSON {
			enc.Encode(map[string]any{"seq": seq, "data": string(msg)})
		} else {
			stdout.Write(append(bytes.TrimRight(msg, "\n"), '\n'))
		}
	}
	return exitOK
}

// parseEventJSON is parseEvent for sub and serve: one NAME, plus -n and
// (sub) --json.
func parseEventJSON(name, synopsis, explain string, args []string, stdout, stderr io.Writer, n *int, asJSON *bool) (*channelFlags, []string, int, bool) {
	fs := newFlagSet(name, synopsis, explain, stdout, stderr)
	cf := &channelFlags{}
	fs.StringVar(&cf.dir, "dir", "/dev/shm", "directory of the channel's segment")
	fs.IntVar(&cf.capacity, "capacity", 0, "messages kept, if this creates the channel (default 64)")
	fs.IntVar(&cf.max, "max", 0, "largest message in bytes, if this creates the channel (default 1024)")
	fs.IntVar(&cf.requests, "requests", 0, "request slots, if this creates the channel (default 16)")
	fs.IntVar(n, "n", 0, "stop after this many (0: until interrupted)")
	if asJSON != nil {
		fs.BoolVar(asJSON, "json", false, "print JSON lines")
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, nil, flagError(stderr, name, err), false
	}
	if len(pos) != 1 {
		return nil, nil, failf(stderr, exitUsage, "%s: want %s (see 'robustlock %s -h')", name, synopsis, name), false
	}
	return cf, pos, 0, true
}

func runReq(args []string, stdout, stderr io.Writer) int {
	timeout := 10
	cf, pos, st, ok := parseEvent("req", "[flags] NAME MSG",
		"Send the request MSG on NAME, wait for one server's response and print it. Exit 1 if the server\n"+
			"died holding it (ErrServerDied) or no response came within -timeout seconds.",
		args, 2, stdout, stderr, func(fs interface {
			IntVar(*int, string, int, string)
		}) {
			fs.IntVar(&timeout, "timeout", 10, "seconds to wait for the response")
		})
	if !ok {
		return st
	}
	c, err := event.Open(pos[0], cf.options()...)
	if err != nil {
		return failf(stderr, exitFail, "req: %v", err)
	}
	defer c.Close()
	ctx, stop := interrupted()
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(timeout)*time.Second)
	defer cancel()
	reply, err := c.Request(ctx, []byte(pos[1]))
	if err != nil {
		return failf(stderr, exitFail, "req: %v", err)
	}
	stdout.Write(append(bytes.TrimRight(reply, "\n"), '\n'))
	return exitOK
}

func runServe(args []string, stdout, stderr io.Writer) int {
	var n int
	var pos []string
	var cf *channelFlags
	var st int
	var ok bool
	// serve takes NAME and, after it, an optional command: "serve NAME -- cmd args".
	split := len(args)
	for i, a := range args {
		if a == "--" {
			split = i
			break
		}
	}
	command := []string(nil)
	if split < len(args) {
		command = args[split+1:]
	}
	cf, pos, st, ok = parseEventJSON("serve", "[flags] NAME [-- COMMAND ARGS...]",
		"Answer requests on NAME: by echoing each, or, given a COMMAND, by running it with the request\n"+
			"on its stdin and responding with its stdout. Stops after -n requests, or on Ctrl-C.",
		args[:split], stdout, stderr, &n, nil)
	if !ok {
		return st
	}
	c, err := event.Open(pos[0], cf.options()...)
	if err != nil {
		return failf(stderr, exitFail, "serve: %v", err)
	}
	defer c.Close()
	ctx, stop := interrupted()
	defer stop()
	for done := 0; n == 0 || done < n; done++ {
		r, err := c.NextRequest(ctx)
		if ctx.Err() != nil {
			return exitInterrupted
		}
		if err != nil {
			return failf(stderr, exitFail, "serve: %v", err)
		}
		reply := r.Data()
		if command != nil {
			cmd := exec.CommandContext(ctx, command[0], command[1:]...)
			cmd.Stdin = bytes.NewReader(r.Data())
			cmd.Stderr = stderr
			if reply, err = cmd.Output(); err != nil {
				fmt.Fprintf(stderr, "robustlock: serve: %s: %v\n", command[0], err)
			}
			if len(reply) > c.MaxMessage() {
				reply = reply[:c.MaxMessage()]
			}
		}
		switch err := r.Respond(reply); {
		case errors.Is(err, event.ErrRequesterGone):
			fmt.Fprintf(stderr, "robustlock: serve: requester gone before the response\n")
		case err != nil:
			return failf(stderr, exitFail, "serve: %v", err)
		}
	}
	return exitOK
}

// inspectChannel returns the event channel state of segment name for
// inspect (nil, "" when the segment is no channel): the value for --json and
// the text to print after the segment's own.
func inspectChannel(name, dir string) (any, string) {
	st, err := event.Inspect(name, event.Dir(dir))
	if err != nil {
		return nil, ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nevent channel: %d messages published, %d of %d kept in the ring (max %d bytes each)\n",
		st.Head, st.RingUsed, st.Capacity, st.MaxMessage)
	fmt.Fprintf(&b, "  subscribers asleep %s, servers asleep %s, publisher lock %s\n",
		yesNo(st.SubscribersAsleep), yesNo(st.ServersAsleep), st.PublisherLock)
	fmt.Fprintf(&b, "  request slots: %d of %d in use\n", st.SlotsInUse(), st.Requests)
	for i, s := range st.Slots {
		if !s.InUse() {
			continue
		}
		fmt.Fprintf(&b, "  slot %d: %s, %d bytes; requester %s, server %s\n", i, s.Phase, s.Len,
			claimer(s.Requester, s.RequesterAlive, s.RequesterDied), claimer(s.Server, s.ServerAlive, s.ServerDied))
	}
	return st, b.String()
}

func claimer(tid int, alive, died bool) string {
	switch {
	case tid == 0 && died:
		return "died"
	case tid == 0:
		return "none"
	case alive:
		return fmt.Sprintf("tid %d (alive)", tid)
	}
	return fmt.Sprintf("tid %d (gone)", tid)
}
