package loadgen

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/PID/stat's times: USER_HZ, 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// ProcessCPUTime returns the CPU time (user + system, every thread, children
// not included) that process pid has used, from /proc/PID/stat. Its
// resolution is clockTick.
func ProcessCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("loadgen: cpu of pid %d: %w", pid, err)
	}
	return parseStat(string(b))
}

// parseStat reads utime + stime (fields 14 and 15) from a /proc/PID/stat
// line. The command name (field 2) may hold spaces and parentheses, so the
// fields are counted from its last ')'.
func parseStat(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: malformed /proc stat line")
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state): utime is field 14, stime field 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("loadgen: malformed /proc stat line (%d fields)", len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("loadgen: malformed /proc stat time %q: %w", f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// sampleCPU reads the CPU time of every process of pids that exists.
func sampleCPU(pids []int) map[int]time.Duration {
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		if d, err := ProcessCPUTime(pid); err == nil {
			out[pid] = d
		}
	}
	return out
}

// addCPUDelta adds to by the CPU time each process used between two
// samples, for the processes found in both (one that went away or
// restarted in between is left out), and returns the total.
func addCPUDelta(by map[int]time.Duration, before, after map[int]time.Duration) time.Duration {
	var total time.Duration
	for pid, a := range after {
		if b, ok := before[pid]; ok && a >= b {
			total += a - b
			if by != nil {
				by[pid] += a - b
			}
		}
	}
	return total
}
