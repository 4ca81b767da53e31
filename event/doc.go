// Package event owns event channels between unrelated processes: named
// shared-memory channels (each a segment, package segment) on which any
// process can publish messages to every subscriber, and send requests that
// exactly one server answers, with no daemon and no set-up step.
//
// It owns the channel's layout inside the segment (layout.go, versioned
// and validated like a segment header), the publish/subscribe ring
// (channel.go), the request queue (request.go) and the process-local
// waiting that lets any number of goroutines wait without a thread each
// (wait.go).
//
// Every case of a process's death is covered: a publisher killed at any
// instruction never exposes a partial message and never wedges the ring
// (the segment's robust mutex tells the next publisher, which completes or
// discards the uncommitted slot); a subscriber holds no shared state; a
// server that dies holding a request makes Request return ErrServerDied as
// soon as the kernel processes the death (the claim is a robust futex word
// on the server's robust list); a requester that dies or gives up frees its
// slot, and the server's Respond returns ErrRequesterGone.
//
//	ch, err := event.Open("prices", event.Capacity(256), event.MaxMessage(512))
//	...
//	ch.Publish([]byte("EURUSD 1.0842"))
//
//	sub, _ := ch.Subscribe()
//	for {
//		msg, err := sub.Next(ctx)
//		var lap *event.LappedError
//		if errors.As(err, &lap) { log.Printf("missed %d", lap.Missed); continue }
//		...
//	}
//
// Linux only (like package segment); elsewhere Open returns
// segment.ErrUnsupported.
package event
