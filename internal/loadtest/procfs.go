package main

// What the watchers scenario reads about processes: file limits and
// resident memory, from setrlimit(2) and /proc.

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	rssSamples  = 5
	rssInterval = 300 * time.Millisecond
)

// raiseNoFile raises this process's RLIMIT_NOFILE soft limit to its hard
// limit and returns both. Go's runtime does the same at start on Linux;
// doing it here does not depend on that.
func raiseNoFile() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, 0, fmt.Errorf("setrlimit(RLIMIT_NOFILE, %d): %w", lim.Max, err)
		}
	}
	return lim.Cur, lim.Max, nil
}

// openFilesLimit is the soft "Max open files" of process pid.
func openFilesLimit(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Max open files")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			break
		}
		if fields[0] == "unlimited" {
			return 1 << 62, nil
		}
		return strconv.ParseUint(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/limits: no Max open files line", pid)
}

// rssKiB is VmRSS of process pid, in KiB.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "123456 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: unexpected VmRSS line %q", pid, line)
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS line", pid)
}

// rssSample is a few readings of VmRSS, in KiB.
type rssSample struct{ median, min, max int64 }

func (s rssSample) String() string {
	return fmt.Sprintf("%.1f MiB (%.1f-%.1f)", float64(s.median)/1024, float64(s.min)/1024, float64(s.max)/1024)
}

func sampleRSS(pid int) (rssSample, error) {
	v := make([]int64, 0, rssSamples)
	for i := range rssSamples {
		if i > 0 {
			time.Sleep(rssInterval)
		}
		kib, err := rssKiB(pid)
		if err != nil {
			return rssSample{}, err
		}
		v = append(v, kib)
	}
	slices.Sort(v)
	return rssSample{median: v[len(v)/2], min: v[0], max: v[len(v)-1]}, nil
}

// cpuTime is the user+system CPU time process pid has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which may hold spaces and ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// threads is the number of threads of process pid.
func threads(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Threads:"); ok {
			return strconv.Atoi(strings.TrimSpace(rest))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no Threads line", pid)
}

// loadAverage is the first field of /proc/loadavg: how busy the machine
// was over the last minute, which the figures depend on.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}
