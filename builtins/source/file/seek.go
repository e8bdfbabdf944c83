package file

import (
	"context"
	"fmt"
)

// Seek reads every file the source follows again from its first byte (to
// must be "earliest": a file has no index by time, and its end is where a
// tailing source already waits). Files a glob finished and let go of
// during this run are not read again. The new position is checkpointed like
// any other, so a restart resumes from it. The engine calls Seek with no
// Read in progress and every batch acknowledged (an operator's rewind
// through the admin API).
func (s *Source) Seek(_ context.Context, to string) error {
	if to != "earliest" {
		return fmt.Errorf("a file source rewinds only to the start of its files (\"earliest\"), not to %q", to)
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.closed || !s.opened {
		return fmt.Errorf("the source is not open")
	}
	for _, st := range s.streams {
		s.mu.Lock()
		st.epoch++ // acks of batches read before now are ignored
		st.rewind = nil
		s.mu.Unlock()
		for _, sg := range st.segs {
			if sg.truncated || sg.rd == nil || (sg.f == nil && !sg.parked) {
				continue
			}
			sg.rd.reset(0)
			sg.ml = pendingEvent{}
			sg.drained, sg.finishing = false, false
			sg.countedOff, sg.line = 0, 1
			s.mu.Lock()
			sg.emitted, sg.committed = 0, 0
			s.dirty = true
			s.mu.Unlock()
		}
	}
	s.eof = false
	s.signal()
	s.log.Info().Msg("rewound to the start of the files by an operator")
	return nil
}
