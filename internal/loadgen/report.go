package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Report is what a run measured.
type Report struct {
	Op           Op             `json:"op"`
	Client       Client         `json:"client"`
	Concurrency  int            `json:"concurrency"`
	PayloadBytes int            `json:"payload_bytes"`
	Duration     time.Duration  `json:"duration_ns,omitempty"`
	Requests     int            `json:"requests,omitempty"`
	Slice        time.Duration  `json:"slice_ns"`
	Targets      []TargetReport `json:"targets"`
}

// TargetReport is what one target served.
type TargetReport struct {
	Name     string `json:"name"`
	Op       Op     `json:"op"`
	Endpoint string `json:"endpoint"`
	Floor    bool   `json:"floor,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
	// Requests counts every request that completed, Errors those that
	// failed, by code in ErrorsByCode.
	Requests     uint64            `json:"requests"`
	Errors       uint64            `json:"errors"`
	ErrorsByCode map[string]uint64 `json:"errors_by_code,omitempty"`
	// Elapsed is the time the target was loaded, measured slices only.
	Elapsed time.Duration `json:"elapsed_ns"`
	// OpsPerSec is successful requests per second of Elapsed.
	OpsPerSec float64 `json:"ops_per_sec"`
	// Latency is over successful requests.
	Latency Latency `json:"latency"`
	// ThroughputVsFirst is OpsPerSec divided by the first target's.
	ThroughputVsFirst float64 `json:"throughput_vs_first"`
	// ServerPIDs are the processes whose CPU time ServerCPU sums;
	// ServerCPUPerOp divides it by Requests. Zero without PIDs.
	ServerPIDs     []int         `json:"server_pids,omitempty"`
	ServerCPU      time.Duration `json:"server_cpu_ns,omitempty"`
	ServerCPUPerOp time.Duration `json:"server_cpu_per_op_ns,omitempty"`
	// Processes breaks ServerCPU down by process.
	Processes []ProcessCPU `json:"processes,omitempty"`
	// MissingPIDs went away during the run: their time is not counted.
	MissingPIDs []int `json:"missing_pids,omitempty"`
	// SelfCPUPerOp is the load generator's own CPU time per request: the
	// client's cost, and the floor's too for a floor target (it runs in
	// the same process).
	SelfCPUPerOp time.Duration `json:"self_cpu_per_op_ns"`
}

// ProcessCPU is one endpoint process's CPU time over a target's slices.
type ProcessCPU struct {
	PID   int           `json:"pid"`
	Name  string        `json:"name,omitempty"`
	CPU   time.Duration `json:"cpu_ns"`
	PerOp time.Duration `json:"cpu_per_op_ns"`
}

func buildReport(cfg Config, targets []*target) *Report {
	r := &Report{Op: cfg.Op, Client: cfg.Client, Concurrency: cfg.Concurrency, PayloadBytes: cfg.PayloadBytes,
		Duration: cfg.Duration, Requests: cfg.Requests, Slice: cfg.Slice}
	for _, t := range targets {
		var h Histogram
		errs := map[string]uint64{}
		for i := range t.hists {
			h.Merge(&t.hists[i])
			for code, n := range t.errs[i] {
				errs[code] += n
			}
		}
		tr := TargetReport{Name: t.Name, Op: t.Op, Endpoint: t.endpoint, Floor: t.Target.Floor, Elapsed: t.measured,
			Latency: h.Summary(), ServerPIDs: t.PIDs, ServerCPU: t.serverCPU}
		if t.fx != nil {
			tr.KeyID = t.fx.keyID
		}
		for _, n := range errs {
			tr.Errors += n
		}
		if len(errs) > 0 {
			tr.ErrorsByCode = errs
		}
		tr.Requests = h.Count() + tr.Errors
		if t.measured > 0 {
			tr.OpsPerSec = float64(h.Count()) / t.measured.Seconds()
		}
		if tr.Requests > 0 {
			tr.SelfCPUPerOp = t.selfCPU / time.Duration(tr.Requests)
			if len(t.PIDs) > 0 {
				tr.ServerCPUPerOp = t.serverCPU / time.Duration(tr.Requests)
			}
			for _, pid := range t.PIDs {
				cpu := t.cpuByPID[pid]
				tr.Processes = append(tr.Processes, ProcessCPU{PID: pid, Name: t.PIDNames[pid], CPU: cpu, PerOp: cpu / time.Duration(tr.Requests)})
			}
		}
		tr.MissingPIDs = slices.Sorted(maps.Keys(t.missing))
		r.Targets = append(r.Targets, tr)
	}
	if len(r.Targets) > 0 && r.Targets[0].OpsPerSec > 0 {
		for i := range r.Targets {
			r.Targets[i].ThroughputVsFirst = r.Targets[i].OpsPerSec / r.Targets[0].OpsPerSec
		}
	}
	return r
}

// WriteText writes the report as a table, then the errors by code and the
// first target's ratio to each other one.
func (r *Report) WriteText(w io.Writer) {
	measure := fmt.Sprintf("%v per target", r.Duration)
	if r.Requests > 0 {
		measure = fmt.Sprintf("%d requests per target", r.Requests)
	}
	ops := string(r.Op)
	for _, t := range r.Targets {
		if t.Op != r.Op {
			ops += " (" + t.Name + ": " + string(t.Op) + ")"
		}
	}
	fmt.Fprintf(w, "%s, %d-byte payload, concurrency %d, %s client, %s in %v slices\n",
		ops, r.PayloadBytes, r.Concurrency, r.Client, measure, r.Slice)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tendpoint\trequests\terrors\tops/s\tp50\tp90\tp99\tmax\tserver CPU/op\tbench CPU/op\t")
	for _, t := range r.Targets {
		server := "-"
		if len(t.ServerPIDs) > 0 {
			server = fmt.Sprintf("%s (%d pids)", fmtDuration(t.ServerCPUPerOp), len(t.ServerPIDs))
		}
		endpoint := t.Endpoint
		if t.Floor {
			endpoint = "floor " + endpoint
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", t.Name, endpoint, t.Requests, t.Errors, t.OpsPerSec,
			fmtDuration(t.Latency.P50), fmtDuration(t.Latency.P90), fmtDuration(t.Latency.P99), fmtDuration(t.Latency.Max),
			server, fmtDuration(t.SelfCPUPerOp))
	}
	tw.Flush()
	for _, t := range r.Targets {
		if len(t.ErrorsByCode) > 0 {
			var parts []string
			for _, code := range slices.Sorted(maps.Keys(t.ErrorsByCode)) {
				parts = append(parts, fmt.Sprintf("%s %d", code, t.ErrorsByCode[code]))
			}
			fmt.Fprintf(w, "errors of %s: %s\n", t.Name, strings.Join(parts, ", "))
		}
		if len(t.Processes) > 1 {
			var parts []string
			for _, p := range t.Processes {
				name := p.Name
				if name == "" {
					name = fmt.Sprint("pid ", p.PID)
				}
				parts = append(parts, fmt.Sprintf("%s %s", name, fmtDuration(p.PerOp)))
			}
			fmt.Fprintf(w, "server CPU/op of %s by process: %s\n", t.Name, strings.Join(parts, ", "))
		}
		if len(t.MissingPIDs) > 0 {
			fmt.Fprintf(w, "%s: pids %v went away during the run; their CPU time is not counted\n", t.Name, t.MissingPIDs)
		}
	}
	if len(r.Targets) < 2 {
		return
	}
	first := r.Targets[0]
	for _, t := range r.Targets[1:] {
		if t.OpsPerSec == 0 {
			continue
		}
		fmt.Fprintf(w, "%s / %s: %.3f of the throughput (%s / %s = %.3f); p50 %+.3f ms, p99 %+.3f ms\n",
			first.Name, t.Name, first.OpsPerSec/t.OpsPerSec, t.Name, first.Name, t.ThroughputVsFirst,
			ms(first.Latency.P50-t.Latency.P50), ms(first.Latency.P99-t.Latency.P99))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fmtDuration prints a latency with three significant digits.
func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d)
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3gms", ms(d))
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}

// progress prints a line per second: each target's requests per second
// since the last line, their mean latency and errors.
type progress struct {
	w       io.Writer
	targets []*target
	start   time.Time
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

func startProgress(w io.Writer, targets []*target) *progress {
	p := &progress{w: w, targets: targets, start: time.Now(), done: make(chan struct{})}
	if w == nil {
		return p
	}
	p.wg.Go(p.loop)
	return p
}

func (p *progress) loop() {
	type counts struct {
		completed, failed uint64
		latency           int64
	}
	last := make([]counts, len(p.targets))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev := time.Now()
	for {
		select {
		case <-p.done:
			return
		case now := <-tick.C:
			var parts []string
			for i, t := range p.targets {
				c := counts{t.completed.Load(), t.failed.Load(), t.latencyNS.Load()}
				n := c.completed - last[i].completed
				if n > 0 {
					mean := time.Duration((c.latency - last[i].latency) / int64(n))
					parts = append(parts, fmt.Sprintf("%s %.0f req/s, mean %s, %d errors", t.Name,
						float64(n)/now.Sub(prev).Seconds(), fmtDuration(mean), c.failed-last[i].failed))
				}
				last[i] = c
			}
			prev = now
			if len(parts) > 0 {
				fmt.Fprintf(p.w, "[%4.0fs] %s\n", now.Sub(p.start).Seconds(), strings.Join(parts, "; "))
			}
		}
	}
}

func (p *progress) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}
