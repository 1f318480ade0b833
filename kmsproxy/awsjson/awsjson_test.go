package awsjson_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

func TestReadRequestBody(t *testing.T) {
	big := strings.Repeat("a", awsjson.MaxBodyBytes+1)
	tests := []struct {
		name    string
		body    io.Reader
		length  int64
		want    string
		errType string
	}{
		{name: "exact length", body: strings.NewReader(`{"KeyId":"k"}`), length: 13, want: `{"KeyId":"k"}`},
		{name: "empty", body: strings.NewReader(""), length: 0, want: ""},
		{name: "unknown length", body: strings.NewReader(`{"a":1}`), length: -1, want: `{"a":1}`},
		{name: "more than announced is read whole", body: strings.NewReader(`{"a":1}`), length: 3, want: `{"a":1}`},
		{name: "shorter than announced", body: strings.NewReader(`{}`), length: 10, errType: "SerializationException"},
		{name: "announced too large", body: strings.NewReader("{}"), length: awsjson.MaxBodyBytes + 1, errType: "RequestEntityTooLargeException"},
		{name: "unknown length, too large", body: strings.NewReader(big), length: -1, errType: "RequestEntityTooLargeException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", tt.body)
			r.ContentLength = tt.length
			got, err := awsjson.ReadRequestBody(r)
			if tt.errType != "" {
				var ae *awsjson.Error
				require.True(t, errors.As(err, &ae), "error %v", err)
				require.Equal(t, tt.errType, ae.Type)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
		})
	}
}

func TestWriteJSONAndError(t *testing.T) {
	w := httptest.NewRecorder()
	awsjson.WriteJSON(w, "req-1", map[string]string{"KeyId": "k"})
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, awsjson.ContentType, w.Header().Get("Content-Type"))
	require.Equal(t, "req-1", w.Header().Get("x-amzn-RequestId"))
	require.JSONEq(t, `{"KeyId":"k"}`, w.Body.String())

	w = httptest.NewRecorder()
	awsjson.WriteError(w, awsjson.CloudHSM, "req-2", awsjson.Errorf("CloudHsmResourceNotFoundException", http.StatusBadRequest, "no %s", "cluster"))
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Equal(t, "CloudHsmResourceNotFoundException", w.Header().Get("x-amzn-ErrorType"))
	require.Equal(t, "req-2", w.Header().Get("x-amzn-RequestId"))
	require.JSONEq(t, `{"__type":"CloudHsmResourceNotFoundException","Message":"no cluster"}`, w.Body.String())

	w = httptest.NewRecorder()
	awsjson.WriteError(w, awsjson.KMS, "req-3", errors.New("secret internal detail"))
	require.Equal(t, http.StatusInternalServerError, w.Code)
	require.NotContains(t, w.Body.String(), "secret")
	require.True(t, bytes.Contains(w.Body.Bytes(), []byte(`"__type":"KMSInternalException"`)))
}
