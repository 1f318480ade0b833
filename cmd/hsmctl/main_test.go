package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantOut    string
		wantErr    string
	}{
		{name: "no args prints help", args: nil, wantStatus: 0, wantOut: "Commands:"},
		{name: "help lists up", args: []string{"help"}, wantStatus: 0, wantOut: "up "},
		{name: "help of a command", args: []string{"help", "fault", "latency"}, wantStatus: 0, wantOut: "-between"},
		{name: "command --help", args: []string{"user", "create", "--help"}, wantStatus: 0, wantOut: "-new-username"},
		{name: "unknown command", args: []string{"frobnicate"}, wantStatus: 2, wantErr: `unknown command "frobnicate"`},
		{name: "bad flag", args: []string{"status", "--nope"}, wantStatus: 2, wantErr: "flag provided but not defined"},
		{name: "bad flag shows the usage", args: []string{"status", "--nope"}, wantStatus: 2, wantErr: "Flags:"},
		{name: "bad output", args: []string{"status", "--output", "yaml"}, wantStatus: 2, wantErr: "--output must be text or json"},
		{name: "up with too many AZs", args: []string{"up", "--azs", "9"}, wantStatus: 2, wantErr: "--azs must be 1 to 3"},
		{name: "status without a deployment", args: []string{"status", "--dir", "/nonexistent/hsmsim"}, wantStatus: 1, wantErr: "no deployment in"},
		{name: "fault kill needs --hsm", args: []string{"fault", "kill"}, wantStatus: 2, wantErr: "--hsm is required"},
		{name: "latency needs two AZs", args: []string{"fault", "latency", "--between", "a"}, wantStatus: 2, wantErr: "--between AZ1,AZ2"},
		{name: "HSM command needs a cluster", args: []string{"user", "list", "--password", "x"}, wantStatus: 2, wantErr: "--cluster-id is required"},
		{name: "bad role", args: []string{"login", "--cluster-id", "c", "--role", "root", "--password", "x"}, wantStatus: 2, wantErr: `role "root"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, tt.wantStatus, run(context.Background(), tt.args, &out, &errOut), "stderr: %s", errOut.String())
			require.Contains(t, out.String(), tt.wantOut)
			require.Contains(t, errOut.String(), tt.wantErr)
		})
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands() {
		var out, errOut bytes.Buffer
		args := append(splitName(c.name), "--help")
		require.Equal(t, 0, run(context.Background(), args, &out, &errOut), c.name)
		require.Contains(t, out.String(), c.summary)
		require.Contains(t, out.String(), "-output", "every command takes --output json")
		require.Empty(t, errOut.String(), "the help goes to stdout only, once")
	}
}

func splitName(name string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == ' ' {
			out = append(out, name[start:i])
			start = i + 1
		}
	}
	return out
}
