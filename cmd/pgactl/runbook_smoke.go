package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/buildinfo"
	"github.com/pganalytics/pganalytics/runbook"
	"github.com/pganalytics/pganalytics/smoke"
)

// envSmoke runs the smoke suite against the environment's API: API_URL, API_USERNAME/API_PASSWORD,
// API_VIEWER_USERNAME/API_VIEWER_PASSWORD, DATABASE_URL and CORS_ORIGIN (all but API_URL optional).
type envSmoke struct {
	env *runbook.Environment
}

func (s envSmoke) Run(ctx context.Context, w io.Writer, only []string) (int, error) {
	apiURL, err := s.env.Lookup("API_URL")
	if err != nil {
		return 0, err
	}
	opt := func(name string) string {
		v, _ := s.env.Lookup(name)
		return v
	}
	cl, err := client.New(client.Options{BaseURL: apiURL, CAFile: s.env.CAFile, UserAgent: "pgactl/" + buildinfo.String()})
	if err != nil {
		return 0, err
	}
	suite, err := smoke.New(smoke.Config{
		Client:         cl,
		AdminUsername:  opt("API_USERNAME"),
		AdminPassword:  opt("API_PASSWORD"),
		ViewerUsername: opt("API_VIEWER_USERNAME"),
		ViewerPassword: opt("API_VIEWER_PASSWORD"),
		DatabaseURL:    opt("DATABASE_URL"),
		CORSOrigin:     opt("CORS_ORIGIN"),
		Only:           only,
	})
	if err != nil {
		return 0, err
	}
	failed, err := suite.Run(ctx, w)
	if errors.Is(err, smoke.ErrAuthFailed) {
		err = fmt.Errorf("%w: %w", runbook.ErrAuth, err)
	}
	return failed, err
}
