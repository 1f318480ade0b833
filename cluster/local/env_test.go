package local

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestChildEnv(t *testing.T) {
	tests := []struct {
		name       string
		environ    []string
		gomaxprocs int
		want       []string
	}{
		{
			name:    "nothing set",
			environ: []string{"HOME=/root"},
			want:    []string{"HOME=/root", "GOGC=400", "GODEBUG=" + sysmonAwake},
		},
		{
			name:       "GOMAXPROCS from the rule",
			environ:    []string{"HOME=/root"},
			gomaxprocs: 1,
			want:       []string{"HOME=/root", "GOMAXPROCS=1", "GOGC=400", "GODEBUG=" + sysmonAwake},
		},
		{
			name:    "the user's GODEBUG is kept and extended",
			environ: []string{"GODEBUG=gctrace=1,madvdontneed=1", "HOME=/root"},
			want:    []string{"GODEBUG=gctrace=1,madvdontneed=1", "HOME=/root", "GOGC=400", "GODEBUG=gctrace=1,madvdontneed=1," + sysmonAwake},
		},
		{
			name:    "the user's schedtrace wins",
			environ: []string{"GODEBUG=gctrace=1,schedtrace=1000"},
			want:    []string{"GODEBUG=gctrace=1,schedtrace=1000", "GOGC=400"},
		},
		{
			name:    "the last GODEBUG counts",
			environ: []string{"GODEBUG=schedtrace=1000", "GODEBUG=gctrace=1", "GOGC=off"},
			want:    []string{"GODEBUG=schedtrace=1000", "GODEBUG=gctrace=1", "GOGC=off", "GODEBUG=gctrace=1," + sysmonAwake},
		},
		{
			name:    "an empty GODEBUG",
			environ: []string{"GODEBUG="},
			want:    []string{"GODEBUG=", "GOGC=400", "GODEBUG=" + sysmonAwake},
		},
		{
			name:    "the user's GOGC wins",
			environ: []string{"GOGC=50"},
			want:    []string{"GOGC=50", "GODEBUG=" + sysmonAwake},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append([]string(nil), tt.environ...)
			require.Equal(t, tt.want, ChildEnv(tt.environ, tt.gomaxprocs))
			require.Equal(t, before, tt.environ, "the caller's slice is not changed")
		})
	}
}
