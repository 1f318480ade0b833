package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// command is one hsmctl command, named by one or two words ("up", "fault kill").
type command struct {
	name    string
	summary string
	// flags declares the command's flags on fs and returns what run needs.
	flags func(fs *flag.FlagSet) any
	run   func(ctx context.Context, e *env, opts any, args []string) error
}

// env is what a command writes to.
type env struct {
	stdout, stderr io.Writer
	json           bool
}

// emit prints v as JSON with --output json, else calls text.
func (e *env) emit(v any, text func(w io.Writer)) error {
	if e.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(e.stdout)
	return nil
}

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func commands() []*command {
	var all []*command
	for _, group := range [][]*command{deployCommands(), faultCommands(), hsmCommands(), backupCommands(), quorumCommands(), clockCommands(), benchCommands(), floorCommands(), composeCommands(), demoCommands()} {
		all = append(all, group...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	return all
}

// run executes one hsmctl invocation and returns its exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout, args)
		return 0
	}
	cmd, rest := lookup(args)
	if cmd == nil {
		fmt.Fprintf(stderr, "hsmctl: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
		printUsage(stderr, nil)
		return 2
	}
	fs := flag.NewFlagSet("hsmctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("output", "text", "output format: text or json")
	opts := cmd.flags(fs)
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "hsmctl %s: %s\n\nFlags:\n", cmd.name, cmd.summary)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	// The usage is printed below, once: to stdout when asked for, to
	// stderr after a parse error (which flag prints itself).
	fs.Usage = func() {}
	// Flags may come after positional arguments ("clock advance 30d --dir D"):
	// parse, set the next positional aside, and go on.
	var positional []string
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage(stdout)
				return 0
			}
			usage(stderr)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "hsmctl %s: --output must be text or json\n", cmd.name)
		return 2
	}
	e := &env{stdout: stdout, stderr: stderr, json: *output == "json"}
	if err := cmd.run(ctx, e, opts, positional); err != nil {
		if e.json {
			json.NewEncoder(stdout).Encode(map[string]string{"error": err.Error()})
		}
		fmt.Fprintf(stderr, "hsmctl %s: %v\n", cmd.name, err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// lookup finds the command named by the first one, two or three words of
// args ("up", "fault kill", "quorum token-sign list"), the longest first.
func lookup(args []string) (*command, []string) {
	all := commands()
	for n := min(3, len(args)); n >= 1; n-- {
		name := strings.Join(args[:n], " ")
		for _, c := range all {
			if c.name == name {
				return c, args[n:]
			}
		}
	}
	return nil, nil
}

func printUsage(w io.Writer, args []string) {
	if len(args) > 1 {
		if c, _ := lookup(args[1:]); c != nil {
			fs := flag.NewFlagSet("hsmctl "+c.name, flag.ContinueOnError)
			fs.String("output", "text", "output format: text or json")
			c.flags(fs)
			fs.SetOutput(w)
			fmt.Fprintf(w, "hsmctl %s: %s\n\nFlags:\n", c.name, c.summary)
			fs.PrintDefaults()
			return
		}
	}
	fmt.Fprintln(w, "hsmctl: run, inspect and break a local hsmsim deployment, and operate its HSMs.")
	fmt.Fprintln(w, "\nUsage: hsmctl <command> [flags]   (hsmctl <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-38s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery command takes --output json.")
}
