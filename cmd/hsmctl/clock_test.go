package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// The clock commands speak the endpoint's admin API; this fake stands in
// for kmsproxy's /hsmsim/clock endpoints.
func TestClockCommands(t *testing.T) {
	var advanced []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/hsmsim/clock/advance":
			var body struct{ Duration string }
			require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
			advanced = append(advanced, body.Duration)
			w.Write([]byte(`{"now": 1800000000.5}`))
		case r.Method == http.MethodGet && r.URL.Path == "/hsmsim/clock":
			w.Write([]byte(`{"now": 1800000000, "offset_seconds": 2592000}`))
		default:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"__type":"UnknownOperationException","message":"no"}`))
		}
	}))
	defer srv.Close()

	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"clock", "advance", "--endpoint", srv.URL, "30d"}, &out, &errOut), errOut.String())
	require.Equal(t, []string{"30d"}, advanced)
	require.Contains(t, out.String(), "2027-01-15T08:00:00Z")

	out.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"clock", "show", "--endpoint", srv.URL}, &out, &errOut))
	require.Contains(t, out.String(), "720h0m0s ahead")

	errOut.Reset()
	require.Equal(t, 2, run(context.Background(), []string{"clock", "advance", "--endpoint", srv.URL}, &out, &errOut))
	require.Contains(t, errOut.String(), "DURATION")
	require.Equal(t, 1, run(context.Background(), []string{"clock", "show", "--dir", t.TempDir()}, &out, &errOut))
}
