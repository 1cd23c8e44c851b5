package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/pganalytics/pganalytics/internal/wait"
)

// call is one typed API request: path is relative to /api/v1 and may hold {id}, filled (escaped) from
// pathID.
type call struct {
	method string
	path   string
	pathID string
	query  url.Values
	header map[string]string
	body   any // JSON-encoded unless []byte
	want   []int
}

// response is a completed exchange; do also returns it, with an *APIError, for an unwanted status.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (c *Client) newRequest(ctx context.Context, rc *resty.Client) *resty.Request {
	r := rc.R().SetContext(ctx).SetHeader("User-Agent", c.userAgent).SetHeader("Accept", "application/json")
	if c.token != "" {
		r.SetAuthToken(c.token)
	}
	return r
}

// do sends a typed call. Any status outside cl.want is an *APIError carrying the decoded body.
func (c *Client) do(ctx context.Context, cl call) (response, error) {
	for waits := 0; ; waits++ {
		out, err := c.doOnce(ctx, cl)
		if err != nil && out.status == http.StatusTooManyRequests && c.waitRateLimit(ctx, waits, out.header) {
			continue
		}
		return out, err
	}
}

// waitRateLimit waits out a 429's Retry-After when the client is allowed one more wait; false means
// the 429 stands.
func (c *Client) waitRateLimit(ctx context.Context, waits int, h http.Header) bool {
	d := ParseRetryAfter(h.Get("Retry-After"), time.Now())
	if waits >= c.rateLimitRetries || d <= 0 || d > maxRateLimitWait {
		return false
	}
	return wait.Sleep(ctx, d)
}

func (c *Client) doOnce(ctx context.Context, cl call) (response, error) {
	r := c.newRequest(ctx, c.rest)
	if cl.pathID != "" {
		r.SetPathParam("id", cl.pathID)
	}
	if len(cl.query) > 0 {
		r.SetQueryParamsFromValues(cl.query)
	}
	r.SetHeaders(cl.header)
	if cl.body != nil {
		if _, raw := cl.body.([]byte); !raw {
			r.SetHeader("Content-Type", "application/json")
		}
		r.SetBody(cl.body)
	}
	resp, err := r.Execute(cl.method, APIPrefix+cl.path)
	if err != nil {
		return response{}, c.transportError(ctx, cl.method, cl.path, err)
	}
	out := response{status: resp.StatusCode(), header: resp.Header(), body: resp.Body()}
	for _, w := range cl.want {
		if out.status == w {
			return out, nil
		}
	}
	return out, newAPIError(out.status, out.header, out.body, time.Now())
}

// transportError classifies a failed exchange: the caller's own cancellation stays a context error;
// everything else the network or TLS did to us is ErrUnreachable.
func (c *Client) transportError(ctx context.Context, method, path string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s %s: %w", method, path, ctxErr)
	}
	if errors.Is(err, resty.ErrResponseBodyTooLarge) {
		return fmt.Errorf("%s %s: response larger than %d bytes: %w", method, path, maxResponseBytes, err)
	}
	return fmt.Errorf("%w: %s %s%s: %w", ErrUnreachable, method, c.baseURL, path, err)
}

// decode unmarshals a successful answer into v.
func decode(resp response, what string, v any) error {
	if err := json.Unmarshal(resp.body, v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// RawRequest is a request outside the typed endpoints, for probes (smoke checks) that must control
// every byte. Path is the escaped path on the server, e.g. "/api/v1/health".
type RawRequest struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// RawResponse is what the server answered, whatever the status.
type RawResponse struct {
	Status int
	Header http.Header
	Body   []byte
	TLS    *tls.ConnectionState // nil over plain HTTP
}

// Do sends req with the client's TLS settings and token (use WithToken("") for an anonymous probe).
// Only transport failures are errors; every HTTP status is returned as is (a 429 only once the
// client's rate-limit waits are spent).
func (c *Client) Do(ctx context.Context, req RawRequest) (RawResponse, error) {
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	for waits := 0; ; waits++ {
		out, err := c.doRaw(ctx, req)
		if err == nil && out.Status == http.StatusTooManyRequests && c.waitRateLimit(ctx, waits, out.Header) {
			continue
		}
		return out, err
	}
}

func (c *Client) doRaw(ctx context.Context, req RawRequest) (RawResponse, error) {
	r := c.newRequest(ctx, c.rest)
	for k, vs := range req.Header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	if len(req.Query) > 0 {
		r.SetQueryParamsFromValues(req.Query)
	}
	if req.Body != nil {
		r.SetBody(req.Body)
	}
	resp, err := r.Execute(req.Method, req.Path)
	if err != nil {
		return RawResponse{}, c.transportError(ctx, req.Method, req.Path, err)
	}
	out := RawResponse{Status: resp.StatusCode(), Header: resp.Header(), Body: resp.Body()}
	if resp.RawResponse != nil {
		out.TLS = resp.RawResponse.TLS
	}
	return out, nil
}
