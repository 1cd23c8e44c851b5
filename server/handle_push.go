package server

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

// handlePush is POST /api/v1/metrics/push: a collector's batch, gzip or identity, capped on the wire
// and after decompression, validated whole before one store transaction takes it. The token's
// revocation is checked by that transaction itself (collectorPush).
func (s *Server) handlePush(w http.ResponseWriter, r *http.Request, p *principal) {
	fail := func(reason string, e *httpError) {
		s.metrics.ingestErrors.WithLabelValues(reason).Inc()
		writeErr(w, e)
	}
	lim := s.cfg.Limits
	ticket, e := s.pushGate.enter(p.id)
	if e != nil {
		s.metrics.pushBusy.WithLabelValues("collector").Inc()
		setPushRetryAfter(w)
		fail("busy", e)
		return
	}
	defer ticket.leave()
	body := http.MaxBytesReader(w, r.Body, lim.PushMaxBytes)
	var src io.Reader = body
	switch enc := contentEncoding(r); enc {
	case "":
	case "gzip", "x-gzip":
		zr, err := s.gunzip(body)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // an empty body is a truncated gzip stream
			}
			e := bodyFailure(tagGzip(err), "")
			fail(reasonFor(e), e)
			return
		}
		defer s.gunzips.Put(zr)
		src = gzipErrors{r: zr}
	default:
		fail("unsupported_encoding", newError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType,
			"Content-Encoding %q is not supported (gzip or identity)", truncate(enc, 32)))
		return
	}
	req, herr := decodePush(&capReader{r: src, max: lim.PushMaxDecompressedBytes}, pushLimits{
		maxSamples: lim.PushMaxSamples, now: time.Now(), retention: s.cfg.Database.Retention.D(),
		deadline: time.Now().Add(lim.PushDecodeTimeout.D()), charge: ticket.charge,
	})
	if herr != nil {
		if herr.code == codeServerBusy {
			s.metrics.pushBusy.WithLabelValues("memory").Inc()
			setPushRetryAfter(w)
		}
		fail(reasonFor(herr), herr)
		return
	}
	res, err := s.store.IngestFor(r.Context(), p.id, p.tokenID, req)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.authFailure("revoked_token")
		fail("revoked_token", newError(http.StatusUnauthorized, codeTokenRevoked, "collector token revoked"))
		return
	case errors.Is(err, store.ErrUnknownSeries):
		// The collector's ids are stale (another store, a re-registration): it resends by name.
		fail("unknown_series", newError(http.StatusConflict, codeUnknownSeries,
			"by_id: %s; nothing was stored: send these samples by name in metrics", strings.TrimPrefix(err.Error(), store.ErrUnknownSeries.Error()+": ")))
		return
	case err != nil:
		e := s.storeFailure(r.Context(), "ingest", err)
		fail("store", e)
		return
	}
	s.metrics.ingestSamples.Add(float64(res.Accepted))
	s.metrics.ingestByID.Add(float64(res.StoredByID()))
	if s.remote.Enabled() {
		forwarded := req
		if req.ByID.Len() > 0 {
			forwarded = &api.PushRequest{CollectedAt: req.CollectedAt,
				Metrics: append(slices.Clip(req.Metrics), res.ByIDSamples(req)...)}
		}
		s.remote.Enqueue(p.id, forwarded)
	}
	if req.Status != nil {
		s.metrics.collectors.set(p.id, *req.Status, time.Now())
	}
	resp := api.PushResponse{Accepted: res.Accepted}
	if len(req.Metrics) > 0 {
		resp.SeriesIDs = res.SeriesIDs
	}
	writeJSON(w, http.StatusAccepted, resp)
}

// gunzip returns a pooled gzip reader of r (put it back in s.gunzips when done). On error, the
// reader is dropped.
func (s *Server) gunzip(r io.Reader) (*gzip.Reader, error) {
	if zr, ok := s.gunzips.Get().(*gzip.Reader); ok {
		return zr, zr.Reset(r)
	}
	return gzip.NewReader(r)
}

// reasonFor labels a refused push for pganalytics_api_ingest_errors_total.
func reasonFor(e *httpError) string {
	switch e.status {
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_encoding"
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return "busy"
	case http.StatusRequestTimeout:
		return "timeout"
	}
	return "invalid"
}
