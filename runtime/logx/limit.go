package logx

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Suppressed is the field of a log line that follows lines of the same
// message a Limiter dropped: how many it dropped.
const Suppressed = "suppressed"

// Limiter is a zerolog hook that rate-limits repeated log lines, so that a
// loop failing at full speed (a file that cannot be opened, a client
// hammering a listener) cannot flood the log: at most Burst lines of one
// message (and level) per Period pass; the others are dropped and counted,
// and the next line of that message that passes carries "suppressed": N.
//
// Lines are told apart by level and message, digits ignored ("error from
// 10.1.2.3:5555" and "error from 10.1.2.4:5612" are one message), so
// fields such as the file or the task do not split a flood. One Limiter is
// shared by a whole process: install it on the root logger with
// logger.Hook(l).
type Limiter struct {
	burst  int
	period time.Duration
	now    func() time.Time

	mu   sync.Mutex
	wins map[limitKey]*limitWindow
}

type limitKey struct {
	level zerolog.Level
	msg   string
}

type limitWindow struct {
	start   time.Time
	n       int // lines seen since start
	dropped int // lines dropped and not reported yet
}

// maxKeys bounds the distinct messages a Limiter remembers.
const maxKeys = 4096

// NewLimiter returns a Limiter passing burst lines of each message per
// period.
func NewLimiter(burst int, period time.Duration) *Limiter {
	return &Limiter{burst: max(1, burst), period: period, now: time.Now, wins: map[limitKey]*limitWindow{}}
}

// Run implements zerolog.Hook.
func (l *Limiter) Run(e *zerolog.Event, level zerolog.Level, msg string) {
	k := limitKey{level, keyOf(msg)}
	now := l.now()
	l.mu.Lock()
	w := l.wins[k]
	if w == nil {
		if len(l.wins) >= maxKeys {
			l.prune(now)
		}
		w = &limitWindow{start: now}
		l.wins[k] = w
	} else if now.Sub(w.start) >= l.period {
		w.start, w.n = now, 0
	}
	w.n++
	if w.n > l.burst {
		w.dropped++
		l.mu.Unlock()
		e.Discard()
		return
	}
	dropped := w.dropped
	w.dropped = 0
	l.mu.Unlock()
	if dropped > 0 {
		e.Int(Suppressed, dropped)
	}
}

// prune forgets windows that ended without drops; if that is not enough,
// it forgets every window (losing at most their drop counts).
func (l *Limiter) prune(now time.Time) {
	for k, w := range l.wins {
		if now.Sub(w.start) >= l.period && w.dropped == 0 {
			delete(l.wins, k)
		}
	}
	if len(l.wins) >= maxKeys {
		clear(l.wins)
	}
}

// keyOf is the part of a message that identifies it: its first 64 bytes,
// each run of digits masked, so numbers in a message do not make each line
// new.
func keyOf(msg string) string {
	const n = 64
	if len(msg) > n {
		msg = msg[:n]
	}
	i := 0
	for i < len(msg) && (msg[i] < '0' || msg[i] > '9') {
		i++
	}
	if i == len(msg) {
		return msg
	}
	b := []byte(msg[:i])
	for ; i < len(msg); i++ {
		c := msg[i]
		if c < '0' || c > '9' {
			b = append(b, c)
		} else if len(b) == 0 || b[len(b)-1] != '#' {
			b = append(b, '#')
		}
	}
	return string(b)
}
