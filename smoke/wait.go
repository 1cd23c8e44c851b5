package smoke

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pganalytics/pganalytics/client"
)

// WaitHealthy polls GET /api/v1/health until it answers 200 "healthy" or timeout passes. It backs
// off from 250ms to 5s (and honours Retry-After) so that waiting spends little of the server's rate
// budget. The error after a timeout is the last failure, so errors.Is(err, client.ErrUnreachable)
// still tells "nothing listens" apart from "up but unhealthy".
func WaitHealthy(ctx context.Context, c *client.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c = c.WithToken("")
	delay := 250 * time.Millisecond
	lastErr := errors.New("no answer yet")
	for {
		h, err := c.Health(ctx)
		switch {
		case err == nil && h.Status == "healthy":
			return nil
		case err == nil:
			lastErr = fmt.Errorf("health status %q", h.Status)
		case ctx.Err() == nil:
			// A request cut short by our own deadline says nothing new about the server.
			lastErr = err
		}
		wait := delay
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.RetryAfter > wait {
			wait = apiErr.RetryAfter
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("not healthy within %s: %w", timeout, lastErr)
		case <-t.C:
		}
		delay = min(delay*2, 5*time.Second)
	}
}
