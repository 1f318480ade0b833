package cloudhsm

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

func TestAWSError(t *testing.T) {
	s := &Service{log: hclog.NewNullLogger()}
	tests := []struct {
		name        string
		err         error
		wantType    string
		wantStatus  int
		wantMessage string
	}{
		{"not found", fmt.Errorf("%w: cluster cluster-aaaaaaaaaaa", cluster.ErrNotFound),
			errNotFound, http.StatusBadRequest, "Resource not found: cluster cluster-aaaaaaaaaaa."},
		{"invalid request", fmt.Errorf("%w: delete the cluster's 1 HSMs first", cluster.ErrInvalidRequest),
			errInvalidRequest, http.StatusBadRequest, "Delete the cluster's 1 HSMs first."},
		{"tag limit", fmt.Errorf("%w: resource cluster-x would have 51 tags; the limit is 50", cluster.ErrTagLimit),
			errLimitExceeded, http.StatusBadRequest, "Resource cluster-x would have 51 tags; the limit is 50."},
		{"HSM failure", fmt.Errorf("%w: backup: %w", cluster.ErrHSM, errors.New("rpc error: kmsuser password hunter2 rejected")),
			errInternal, http.StatusInternalServerError, "An HSM of the cluster failed the request. Try again."},
		{"already an AWS error", awsjson.Errorf("ValidationException", 400, "1 validation error detected"),
			"ValidationException", http.StatusBadRequest, "1 validation error detected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *awsjson.Error
			require.ErrorAs(t, s.awsError("Op", tt.err), &e)
			require.Equal(t, tt.wantType, e.Type)
			require.Equal(t, tt.wantStatus, e.Status)
			require.Equal(t, tt.wantMessage, e.Message)
			require.NotContains(t, e.Message, "hunter2")
		})
	}

	t.Run("anything else is left to the mux's generic internal error", func(t *testing.T) {
		err := errors.New("disk full")
		require.Equal(t, err, s.awsError("Op", err))
	})
}

func TestPage(t *testing.T) {
	tok := func(op string, off int) *string { s := pageToken(op, off); return &s }
	tests := []struct {
		name       string
		n          int
		token      *string
		max        *int64
		from, to   int
		wantNext   *string
		wantErrMsg string
	}{
		{"everything", 5, nil, nil, 0, 5, nil, ""},
		{"first page", 5, nil, ptr(int64(2)), 0, 2, tok("Op", 2), ""},
		{"middle page", 5, tok("Op", 2), ptr(int64(2)), 2, 4, tok("Op", 4), ""},
		{"last page", 5, tok("Op", 4), ptr(int64(2)), 4, 5, nil, ""},
		{"exactly full", 4, tok("Op", 2), ptr(int64(2)), 2, 4, nil, ""},
		{"past the end after deletions", 2, tok("Op", 4), ptr(int64(2)), 2, 2, nil, ""},
		{"empty token", 3, ptr(""), nil, 0, 3, nil, ""},
		{"another operation's", 5, tok("Other", 2), nil, 0, 0, nil, "NextToken"},
		{"negative", 5, tok("Op", -1), nil, 0, 0, nil, "NextToken"},
		{"not base64", 5, ptr("%%%"), nil, 0, 0, nil, "NextToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to, next, err := page("Op", tt.n, tt.token, tt.max)
			if tt.wantErrMsg != "" {
				require.ErrorContains(t, err, tt.wantErrMsg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.from, from)
			require.Equal(t, tt.to, to)
			require.Equal(t, tt.wantNext, next)
		})
	}
}

func TestCheckPattern(t *testing.T) {
	tests := []struct {
		value   string
		wantErr string
	}{
		{"cluster-abcdefghijk", ""},
		{"cluster-abc", "Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}"},
		{"xcluster-abcdefghijk", "Member must satisfy regular expression pattern: ^(?:cluster-[2-7a-zA-Z]{11,16})$"},
		{"cluster-abcdefghijk1", "Member must satisfy regular expression pattern: ^(?:cluster-[2-7a-zA-Z]{11,16})$"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			var v awsjson.Validator
			checkPattern(&v, "ClusterId", &tt.value, clusterIDPattern)
			if tt.wantErr == "" {
				require.NoError(t, v.Err())
				return
			}
			require.ErrorContains(t, v.Err(), "Value '"+tt.value+"' at 'clusterId' failed to satisfy constraint: "+tt.wantErr)
		})
	}
}
