// Package deps checks the direction of imports that DESIGN.md fixes, with
// `go list -deps`, so that a wrong import fails the build's tests.
package deps

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/hsmsim/hsmsim"

type pkg struct {
	ImportPath string
	Deps       []string
}

// listDeps returns every package of the module with its transitive
// dependencies (tests excluded: a test may use the node harness).
func listDeps(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-json", module+"/...").Output()
	require.NoError(t, err)
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for dec.More() {
		var p pkg
		require.NoError(t, dec.Decode(&p))
		pkgs = append(pkgs, p)
	}
	require.NotEmpty(t, pkgs)
	return pkgs
}

// standard reports whether an import path is the standard library's: its
// first element has no dot.
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func under(path, prefix string) bool {
	return path == module+"/"+prefix || strings.HasPrefix(path, module+"/"+prefix+"/")
}

func TestImportRules(t *testing.T) {
	rules := []struct {
		name   string
		from   string
		forbid func(dep string) bool
	}{
		{"cluster never imports node", "cluster", func(d string) bool { return under(d, "node") }},
		{"kmsproxy never imports node", "kmsproxy", func(d string) bool { return under(d, "node") }},
		{"cryptocore uses only the standard library and x/crypto", "cryptocore", func(d string) bool {
			return !standard(d) && !strings.HasPrefix(d, "golang.org/x/crypto") &&
				!strings.HasPrefix(d, "golang.org/x/sys") && !strings.HasPrefix(d, module+"/cryptocore") &&
				!strings.HasPrefix(d, "vendor/")
		}},
		{"node never imports cluster or kmsproxy", "node", func(d string) bool { return under(d, "cluster") || under(d, "kmsproxy") }},
		{"proto holds generated code only", "proto", func(d string) bool { return strings.HasPrefix(d, module+"/") && !under(d, "proto") }},
	}
	pkgs := listDeps(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			checked := 0
			for _, p := range pkgs {
				if !under(p.ImportPath, r.from) {
					continue
				}
				checked++
				for _, d := range p.Deps {
					require.False(t, r.forbid(d), "%s imports %s", p.ImportPath, d)
				}
			}
			require.NotZero(t, checked, "no package under %s", r.from)
		})
	}
}
