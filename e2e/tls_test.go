package e2e

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/demo"
)

// TestMutualTLSStack runs the stack with mutual TLS (`pgactl demo --mtls`): the collector, with its
// client certificate from the demo CA, registers and delivers its cycles; a client without one is
// refused registration, while users need none.
func TestMutualTLSStack(t *testing.T) {
	t.Parallel()
	s := startStackWith(t, 2*time.Second, func(o *demo.Options) { o.MutualTLS = true })
	s.waitCycles(2)

	c, err := client.New(client.Options{BaseURL: s.env.Vars["PGACTL_API_URL"], CAFile: s.env.Vars["PGACTL_CA_FILE"]})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Register(t.Context(), s.env.Vars["REGISTRATION_SECRET"], api.RegisterRequest{Name: "nocert", Hostname: "nocert.example"})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Fatalf("registration without a client certificate: %v, want 403", err)
	}
	if _, err := c.Login(t.Context(), s.env.Vars["PGACTL_USERNAME"], s.env.Vars["PGACTL_PASSWORD"]); err != nil {
		t.Fatalf("a user's login without a client certificate: %v", err)
	}
}
