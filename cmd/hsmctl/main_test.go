package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantOut    string
		wantErr    string
	}{
		{name: "no args prints help", args: nil, wantStatus: 0, wantOut: "Usage:"},
		{name: "help", args: []string{"help"}, wantStatus: 0, wantOut: "hsmctl up"},
		{name: "up is not built yet", args: []string{"up"}, wantStatus: 1, wantErr: "not built yet"},
		{name: "unknown command", args: []string{"frobnicate"}, wantStatus: 2, wantErr: `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, tt.wantStatus, run(tt.args, &out, &errOut))
			require.Contains(t, out.String(), tt.wantOut)
			require.Contains(t, errOut.String(), tt.wantErr)
		})
	}
}
