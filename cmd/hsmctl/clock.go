package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hsmsim/hsmsim/cluster"
)

type clockOpts struct {
	dir      *string
	endpoint *string
}

func clockFlags(fs *flag.FlagSet) any {
	return &clockOpts{
		dir:      fs.String("dir", DefaultDir, "deployment directory"),
		endpoint: fs.String("endpoint", "", "the KMS endpoint (default: the deployment's)"),
	}
}

func clockCommands() []*command {
	return []*command{
		{name: "clock advance", summary: "move the KMS endpoint's clock forward (e.g. 30d, 36h): deletion windows pass, rotations fall due",
			flags: clockFlags, run: runClockAdvance},
		{name: "clock show", summary: "show the KMS endpoint's clock", flags: clockFlags, run: runClockShow},
	}
}

// clockReport is the endpoint's answer about its clock.
type clockReport struct {
	Now           float64 `json:"now"`
	OffsetSeconds float64 `json:"offset_seconds,omitempty"`
}

func (o *clockOpts) url(path string) (string, error) {
	if *o.endpoint != "" {
		return *o.endpoint + path, nil
	}
	store, err := cluster.NewStore(*o.dir)
	if err != nil {
		return "", err
	}
	st, err := store.Load()
	if err != nil {
		return "", err
	}
	ep := st.Endpoints["kms"]
	if ep == "" {
		return "", fmt.Errorf("no KMS endpoint in %s (start one with hsmctl up, or pass --endpoint)", *o.dir)
	}
	return ep + path, nil
}

func runClockAdvance(ctx context.Context, e *env, o any, args []string) error {
	opts := o.(*clockOpts)
	if len(args) != 1 {
		return fmt.Errorf("%w: hsmctl clock advance DURATION (for example 30d)", errUsage)
	}
	url, err := opts.url("/hsmsim/clock/advance")
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"duration": args[0]})
	rep, err := postClock(ctx, url, body)
	if err != nil {
		return err
	}
	return e.emit(rep, func(w io.Writer) { fmt.Fprintf(w, "the KMS clock now reads %s\n", epoch(rep.Now).Format(time.RFC3339)) })
}

func runClockShow(ctx context.Context, e *env, o any, _ []string) error {
	opts := o.(*clockOpts)
	url, err := opts.url("/hsmsim/clock")
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	rep, err := doClock(req)
	if err != nil {
		return err
	}
	return e.emit(rep, func(w io.Writer) {
		fmt.Fprintf(w, "%s (%s ahead of real time)\n", epoch(rep.Now).Format(time.RFC3339), time.Duration(rep.OffsetSeconds*float64(time.Second)))
	})
}

func postClock(ctx context.Context, url string, body []byte) (*clockReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return doClock(req)
}

func doClock(req *http.Request) (*clockReport, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("the endpoint refused: " + string(bytes.TrimSpace(b)))
	}
	var rep clockReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

func epoch(sec float64) time.Time {
	return time.Unix(0, int64(sec*float64(time.Second))).UTC()
}
