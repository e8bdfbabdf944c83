package kafkaconf

import (
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// logger adapts a zerolog.Logger to kgo.Logger. franz-go logs every request
// at Info, which is per-message detail for us, so its levels shift down by
// one: kgo Info → debug, kgo Debug → trace. Warnings and errors stay.
type logger struct{ l zerolog.Logger }

// NewLogger returns a kgo.Logger writing to l. Warnings and errors are
// sampled (a burst of 10 per 10 s each): during an outage the client warns
// on every reconnection attempt.
func NewLogger(l zerolog.Logger) kgo.Logger {
	return logger{l.Sample(zerolog.LevelSampler{
		WarnSampler:  &zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second},
		ErrorSampler: &zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second},
	})}
}

func (g logger) Level() kgo.LogLevel {
	switch lv := g.l.GetLevel(); {
	case lv <= zerolog.TraceLevel:
		return kgo.LogLevelDebug
	case lv <= zerolog.DebugLevel:
		return kgo.LogLevelInfo
	case lv <= zerolog.WarnLevel:
		return kgo.LogLevelWarn
	case lv <= zerolog.ErrorLevel:
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (g logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var ev *zerolog.Event
	switch level {
	case kgo.LogLevelError:
		ev = g.l.Error()
	case kgo.LogLevelWarn:
		ev = g.l.Warn()
	case kgo.LogLevelInfo:
		ev = g.l.Debug()
	case kgo.LogLevelDebug:
		ev = g.l.Trace()
	default:
		return
	}
	if ev == nil {
		return
	}
	for i := 0; i+1 < len(keyvals); i += 2 {
		k, ok := keyvals[i].(string)
		if !ok {
			continue
		}
		if err, ok := keyvals[i+1].(error); ok {
			ev = ev.AnErr(k, err)
			continue
		}
		ev = ev.Interface(k, keyvals[i+1])
	}
	ev.Msg(msg)
}
