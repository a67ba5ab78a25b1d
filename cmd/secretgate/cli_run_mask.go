package main

import (
	"bytes"
	"io"
	"sort"
	"sync"
	"unicode/utf8"
)

// maskText replaces a resolved value in the child's output.
const maskText = "<concealed by secretgate>"

// minMaskRunes: shorter values are not masked. Replacing every "1" or "on"
// in a log would make it unreadable and would tell a reader the value
// anyway, by where the replacements fall.
const minMaskRunes = 4

// masker is a streaming replacer: it writes what it is given to w with
// every value replaced by maskText, even when a value arrives split across
// writes. It holds back only a suffix that could be the start of a value,
// so output is delayed by at most one value's length minus one byte, and
// Close writes what is held back.
type masker struct {
	mu     sync.Mutex
	w      io.Writer
	values [][]byte // longest first, so that the longest match wins
	first  [256]bool
	buf    []byte
}

func newMasker(w io.Writer, values []string) *masker {
	m := &masker{w: w}
	seen := map[string]bool{}
	for _, v := range values {
		if utf8.RuneCountInString(v) < minMaskRunes || seen[v] {
			continue
		}
		seen[v] = true
		m.values = append(m.values, []byte(v))
		m.first[v[0]] = true
	}
	sort.Slice(m.values, func(i, j int) bool { return len(m.values[i]) > len(m.values[j]) })
	return m
}

func (m *masker) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.values) == 0 {
		return m.w.Write(p)
	}
	m.buf = append(m.buf, p...)
	if err := m.flush(false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes what was held back; the stream has ended.
func (m *masker) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.flush(true)
}

func (m *masker) flush(final bool) error {
	out := make([]byte, 0, len(m.buf))
	i := 0
scan:
	for i < len(m.buf) {
		if !m.first[m.buf[i]] {
			out = append(out, m.buf[i])
			i++
			continue
		}
		rest := m.buf[i:]
		if !final {
			// A longer value may still complete here: wait for more.
			for _, v := range m.values {
				if len(rest) < len(v) && bytes.HasPrefix(v, rest) {
					break scan
				}
			}
		}
		for _, v := range m.values {
			if bytes.HasPrefix(rest, v) {
				out = append(out, maskText...)
				i += len(v)
				continue scan
			}
		}
		out = append(out, m.buf[i])
		i++
	}
	m.buf = append(m.buf[:0], m.buf[i:]...)
	if len(out) == 0 {
		return nil
	}
	_, err := m.w.Write(out)
	return err
}
