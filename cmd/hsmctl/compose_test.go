package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestComposeUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantErr    string
	}{
		{"init with a bad --auth", []string{"compose", "init", "--auth", "maybe"}, 2, "--auth must be sigv4 or any"},
		{"init without slots", []string{"compose", "init", "--dir", t.TempDir(), "--slots-dir", missing}, 1, "slots directory"},
		{"connect before init", []string{"compose", "connect", "--dir", t.TempDir()}, 1, "run hsmctl compose init first"},
		{"status without a deployment", []string{"compose", "status", "--dir", missing}, 1, "hsmctl compose init makes one"},
		{"partition needs --az", []string{"compose", "fault", "partition"}, 2, "--az or --hsm is required"},
		{"isolate needs --hsm", []string{"compose", "fault", "isolate"}, 2, "--az or --hsm is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, tt.wantStatus, run(context.Background(), tt.args, &out, &errOut), "stderr: %s", errOut.String())
			require.Contains(t, errOut.String(), tt.wantErr)
		})
	}
}

func TestReadProfile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "credentials")
	require.NoError(t, os.WriteFile(file, []byte("[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\n"+
		"[hsmsim]\naws_access_key_id=AKIAHSMSIM\n aws_secret_access_key = s3cr3t/x+y \n[half]\naws_access_key_id = AKIAHALF\n"), 0o600))
	ak, sk, err := readProfile(file, "hsmsim")
	require.NoError(t, err)
	require.Equal(t, "AKIAHSMSIM", ak)
	require.Equal(t, "s3cr3t/x+y", sk)
	for _, profile := range []string{"half", "absent"} {
		_, _, err := readProfile(file, profile)
		require.ErrorContains(t, err, "no profile "+profile+" with both keys")
		require.NotContains(t, err.Error(), "AKIA", "errors never quote the file's values")
	}
	_, _, err = readProfile(filepath.Join(t.TempDir(), "none"), "hsmsim")
	require.Error(t, err)
}
