package binlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// DumpOptions says from where the server should send its binary log.
type DumpOptions struct {
	// ServerID identifies this replica to the server; it must differ from
	// the server's and from every other replica's (a second replica with
	// the same id makes the server drop the first).
	ServerID uint32
	// GTID is a MariaDB GTID position ("0-1-100,1-2-5": the last
	// transaction seen per domain; "" with no File: the start of the
	// oldest binlog). It takes precedence over File/Pos.
	GTID string
	// UseGTID asks for a GTID-based dump even when GTID is empty (from the
	// beginning of the server's binlog history).
	UseGTID bool
	// File and Pos start a file/position dump (MySQL, or MariaDB without
	// GTIDs). Pos 0 means 4, the first event.
	File string
	Pos  uint32
	// Heartbeat asks the server for a heartbeat event after this long
	// without events, so that a dead connection is noticed; 0: none.
	Heartbeat time.Duration
	// NonBlocking makes the server end the stream (Next returns io.EOF)
	// at the end of its binlog instead of waiting for more.
	NonBlocking bool
}

// Stream is a running binlog dump.
type Stream struct {
	c   *Conn
	dec Decoder
	// File is the binlog file of the last event read (from the rotate
	// events that parse).
	File string
	// idle is the read timeout while waiting for events.
	idle time.Duration
}

// StartDump prepares the connection (checksums, MariaDB GTID capability,
// heartbeat), registers as a replica and starts the dump.
func (c *Conn) StartDump(o DumpOptions) (*Stream, error) {
	rows, err := c.Query("SELECT @@global.binlog_checksum")
	if err != nil {
		return nil, fmt.Errorf("read binlog_checksum: %w", err)
	}
	alg := uint8(ChecksumOff)
	if len(rows) == 1 && len(rows[0]) == 1 && rows[0][0] != nil && strings.EqualFold(*rows[0][0], "CRC32") {
		alg = ChecksumCRC32
	}
	// Tell the server we verify checksums: it then sends them as written.
	if err := c.Exec("SET @master_binlog_checksum = @@global.binlog_checksum"); err != nil {
		return nil, fmt.Errorf("announce checksum support: %w", err)
	}
	if c.MariaDB {
		// 4 = MARIA_SLAVE_CAPABILITY_GTID: send GTID events as they are.
		if err := c.Exec("SET @mariadb_slave_capability = 4"); err != nil {
			return nil, fmt.Errorf("announce GTID capability: %w", err)
		}
	}
	if o.Heartbeat > 0 {
		if err := c.Exec("SET @master_heartbeat_period = " + strconv.FormatInt(o.Heartbeat.Nanoseconds(), 10)); err != nil {
			return nil, fmt.Errorf("set the heartbeat period: %w", err)
		}
	}
	gtid := o.GTID != "" || o.UseGTID
	if gtid {
		if !c.MariaDB {
			return nil, errors.New("a GTID position is only supported on MariaDB: use a file/position on MySQL")
		}
		if strings.ContainsAny(o.GTID, "'\\") {
			return nil, fmt.Errorf("invalid GTID position %q", o.GTID)
		}
		for _, q := range []string{
			"SET @slave_connect_state = '" + o.GTID + "'",
			"SET @slave_gtid_strict_mode = 0",
			"SET @slave_gtid_ignore_duplicates = 0",
		} {
			if err := c.Exec(q); err != nil {
				return nil, fmt.Errorf("set the GTID position: %w", err)
			}
		}
	}
	if err := c.registerReplica(o.ServerID); err != nil {
		return nil, err
	}
	pos := o.Pos
	if pos < 4 {
		pos = 4
	}
	file := o.File
	if gtid {
		file, pos = "", 4
	}
	var flags uint16
	if o.NonBlocking {
		flags |= 1 // BINLOG_DUMP_NON_BLOCK
	}
	cmd := make([]byte, 0, 11+len(file))
	cmd = append(cmd, comBinlogDump)
	cmd = appendU32(cmd, pos)
	cmd = append(cmd, byte(flags), byte(flags>>8))
	cmd = appendU32(cmd, o.ServerID)
	cmd = append(cmd, file...)
	if err := c.pc.command(cmd); err != nil {
		return nil, err
	}
	s := &Stream{c: c, dec: Decoder{ChecksumAlg: alg}, File: o.File}
	if o.Heartbeat > 0 {
		s.idle = 3*o.Heartbeat + c.cfg.Timeout
	}
	return s, nil
}

func (c *Conn) registerReplica(id uint32) error {
	host, _ := os.Hostname()
	if len(host) > 60 {
		host = host[:60]
	}
	cmd := make([]byte, 0, 32+len(host))
	cmd = append(cmd, comRegisterSlave)
	cmd = appendU32(cmd, id)
	cmd = append(cmd, byte(len(host)))
	cmd = append(cmd, host...)
	cmd = append(cmd, 0, 0) // user, password: not reported
	cmd = append(cmd, 0, 0) // port
	cmd = appendU32(cmd, 0) // replication rank
	cmd = appendU32(cmd, 0) // master id
	if err := c.pc.command(cmd); err != nil {
		return err
	}
	p, err := c.pc.read()
	if err != nil {
		return fmt.Errorf("register as a replica: %w", err)
	}
	if len(p) > 0 && p[0] == 0xff {
		return fmt.Errorf("register as a replica: %w", parseError(p))
	}
	return nil
}

// Decoder is the stream's decoder: its format description and the parse
// methods that depend on it.
func (s *Stream) Decoder() *Decoder { return &s.dec }

// Next returns the next event. The event's bytes are valid until the next
// call. At the end of a non-blocking dump it returns io.EOF; a server error
// (a purged position) is a *ServerError.
func (s *Stream) Next() (Event, error) {
	s.c.pc.timeout = s.idle
	p, err := s.c.pc.read()
	if err != nil {
		return Event{}, err
	}
	if len(p) == 0 {
		return Event{}, malformed("empty packet in the binlog stream")
	}
	switch p[0] {
	case 0x00:
	case 0xff:
		return Event{}, parseError(p)
	case 0xfe:
		if len(p) < 9 {
			return Event{}, io.EOF
		}
		fallthrough
	default:
		return Event{}, malformed("binlog stream packet starts with 0x%02x", p[0])
	}
	ev, err := s.dec.Decode(p[1:])
	if err != nil {
		return Event{}, err
	}
	// A rotate event that does not parse is still returned, File left as
	// it was: the caller parses it too and decides. As an error here it
	// would read as a broken stream, and a reconnection would meet it again.
	if ev.Type == RotateEvent {
		if rot, err := s.dec.ParseRotate(ev.Body); err == nil {
			s.File = rot.File
		}
	}
	return ev, nil
}

// Buffered is how many bytes were received and not read yet: 0 means the
// next event is not here yet.
func (s *Stream) Buffered() int { return s.c.pc.br.Buffered() }

// Close ends the dump and the connection.
func (s *Stream) Close() error { return s.c.pc.nc.Close() }
