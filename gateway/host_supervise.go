package gateway

// One plugin process's life: launching and configuring it, watching it
// (process exit, pings) and restarting it with backoff, and prefixing its
// log lines with its backend's name.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk/plugin"
)

var errLaunch = errors.New("cannot launch plugin")

// startOne launches and configures one plugin and marks it up.
func (h *Host) startOne(ctx context.Context, m *managed) error {
	if h.closed.Load() {
		return errors.New("host is closed")
	}
	if m.spec.SHA256 != "" {
		// Checked here too (plugin.Launch checks again) to name the backend in
		// a clear message before anything runs.
		if _, err := os.Stat(m.spec.Path); err != nil {
			return fmt.Errorf("%w %s: %w", errLaunch, m.spec.Path, err)
		}
	}
	lctx, cancel := context.WithTimeout(ctx, configureTimout)
	defer cancel()
	p, err := h.launch(lctx, plugin.LaunchConfig{
		Path:   m.spec.Path,
		Args:   m.spec.Args,
		SHA256: m.spec.SHA256,
		Stderr: &prefixWriter{w: h.stderr, prefix: []byte("plugin " + m.spec.Backend + ": ")},
	})
	if err != nil {
		if errors.Is(err, plugin.ErrChecksumMismatch) {
			return err
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("%w: %w", errLaunch, err)
		}
		return err
	}
	b := p.Backend()
	if err := b.Configure(lctx, cloneSettings(m.spec.Settings)); err != nil {
		p.Kill()
		return fmt.Errorf("configure: %w", err)
	}
	if h.started != nil {
		h.started(lctx, m.spec.Backend, b)
	}
	m.mu.Lock()
	old := m.proc
	m.proc, m.backend = p, b
	m.mu.Unlock()
	if old != nil {
		old.Kill()
	}
	if h.closed.Load() {
		// Close raced with this start: do not leave the new process behind.
		p.Kill()
		return errors.New("host is closed")
	}
	m.up.Store(true)
	return nil
}

func cloneSettings(s map[string]string) map[string]string {
	out := make(map[string]string, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}

// supervise watches one plugin: a dead process or repeated failed pings
// lead to a restart with exponential backoff.
func (h *Host) supervise(m *managed) {
	defer h.wg.Done()
	check := time.NewTicker(checkInterval)
	defer check.Stop()
	lastPing := time.Now()
	failures := 0
	// missed: the last failed ping got no answer within pingTimeout, as
	// opposed to an answer saying that the backend behind it is down.
	missed := false
	backoff := backoffMin
	var nextTry time.Time
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-m.retired:
			return
		case <-check.C:
		case <-m.kick:
		}
		m.mu.RLock()
		proc, backend := m.proc, m.backend
		m.mu.RUnlock()

		dead := proc == nil || proc.Exited() || failures >= maxPingFailures
		if dead {
			if m.up.Swap(false) {
				h.log.Warn("backend plugin is down, restarting", "backend", m.spec.Backend)
			}
			if time.Now().Before(nextTry) {
				continue
			}
			if proc != nil {
				if missed || proc.Exited() {
					// A graceful stop of a plugin that does not answer
					// could only wait out plugin.KillGrace.
					proc.ForceKill()
				} else {
					proc.Kill()
				}
			}
			err := h.startOne(h.ctx, m)
			if err != nil {
				if h.ctx.Err() != nil {
					return
				}
				h.log.Warn("backend plugin restart failed", "backend", m.spec.Backend, "error", err, "retry_in", backoff.String())
				nextTry = time.Now().Add(backoff)
				backoff = min(backoff*2, backoffMax)
				continue
			}
			m.restarts.Add(1)
			h.log.Info("backend plugin restarted", "backend", m.spec.Backend)
			failures, missed, backoff, nextTry, lastPing = 0, false, backoffMin, time.Time{}, time.Now()
			continue
		}
		if time.Since(lastPing) < pingInterval {
			continue
		}
		lastPing = time.Now()
		pctx, cancel := context.WithTimeout(h.ctx, pingTimeout)
		started := time.Now()
		err := backend.Ping(pctx)
		// No answer in time: the transport may give up a moment before
		// pctx does (the plugin SDK's direct channel carries the deadline
		// and enforces it itself), so the time taken counts too.
		timedOut := errors.Is(pctx.Err(), context.DeadlineExceeded) ||
			(err != nil && time.Since(started) >= pingTimeout*9/10)
		cancel()
		if err != nil {
			if h.ctx.Err() != nil {
				return
			}
			failures++
			missed = timedOut
			if m.up.Swap(false) {
				h.log.Warn("backend failed its health ping", "backend", m.spec.Backend, "error", err)
			}
			if failures >= maxPingFailures && missed {
				h.log.Warn("backend plugin does not answer, killing it", "backend", m.spec.Backend, "pid", proc.Pid(), "missed_pings", failures)
			}
			continue
		}
		failures, missed = 0, false
		if !m.up.Swap(true) {
			h.log.Info("backend is available again", "backend", m.spec.Backend)
		}
	}
}

// prefixWriter prefixes every line with the backend's name. go-plugin
// calls it from one goroutine per stream, each through sdk's locked writer.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := append(append([]byte{}, p.prefix...), p.buf[:i+1]...)
		if _, err := p.w.Write(line); err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > 64<<10 {
		// A line without end: flush it rather than grow without bound.
		_, _ = p.w.Write(append(append([]byte{}, p.prefix...), append(p.buf, '\n')...))
		p.buf = p.buf[:0]
	}
	return len(b), nil
}
