//go:build linux

package event_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/futexlab/robustlock/event"
)

// Publish and subscribe: every subscriber, in any process that opens the
// same name, gets every message published after it subscribed.
func Example() {
	dir, _ := os.MkdirTemp("", "event-example")
	defer os.RemoveAll(dir)
	ch, err := event.Open("prices", event.Dir(dir), event.Capacity(16), event.MaxMessage(64))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ch.Close()
	sub, _ := ch.Subscribe()
	ch.Publish([]byte("EURUSD 1.0842"))
	ch.Publish([]byte("EURUSD 1.0843"))
	ctx := context.Background()
	buf := make([]byte, 0, ch.MaxMessage())
	for i := 0; i < 2; i++ {
		msg, err := sub.NextInto(ctx, buf)
		var lap *event.LappedError
		if errors.As(err, &lap) {
			fmt.Println("missed", lap.Missed)
			continue
		}
		fmt.Println(string(msg))
	}
	// Output:
	// EURUSD 1.0842
	// EURUSD 1.0843
}

// Request and reply: each request is taken by exactly one server; a server
// that dies holding it makes Request return ErrServerDied at once.
func ExampleChannel_Request() {
	dir, _ := os.MkdirTemp("", "event-example")
	defer os.RemoveAll(dir)
	ch, err := event.Open("rpc", event.Dir(dir))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ch.Close()
	go func() { // a server; usually another process
		req, err := ch.NextRequest(context.Background())
		if err != nil {
			return
		}
		req.Respond(append([]byte("hello, "), req.Data()...))
	}()
	reply, err := ch.Request(context.Background(), []byte("world"))
	switch {
	case errors.Is(err, event.ErrServerDied):
		fmt.Println("the server died; retry")
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println(string(reply))
	}
	// Output: hello, world
}
