package binlog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Capability flags of the handshake.
const (
	capLongPassword     = 1 << 0
	capLongFlag         = 1 << 2
	capConnectWithDB    = 1 << 3
	capProtocol41       = 1 << 9
	capSSL              = 1 << 11
	capTransactions     = 1 << 13
	capSecureConnection = 1 << 15
	capMultiResults     = 1 << 17
	capPluginAuth       = 1 << 19
	capPluginAuthLenenc = 1 << 21
	capDeprecateEOF     = 1 << 24
)

// Commands.
const (
	comQuit          = 0x01
	comQuery         = 0x03
	comPing          = 0x0e
	comBinlogDump    = 0x12
	comRegisterSlave = 0x15
)

// charsetUTF8MB4 is utf8mb4_general_ci, known to MySQL 5.5.3+ and MariaDB.
const charsetUTF8MB4 = 45

// Config says where and as whom to connect.
type Config struct {
	Net      string // "tcp" (default) or "unix"
	Addr     string // host:port, or a socket path
	User     string
	Password string
	DB       string      // optional default database
	TLS      *tls.Config // nil: plain text
	// Timeout bounds the dial, the handshake and each later command's
	// network operation (not the wait for binlog events). 0: 30s.
	Timeout time.Duration
}

// ServerError is an ERR packet: the server refused a command.
type ServerError struct {
	Code    uint16
	State   string
	Message string
}

func (e *ServerError) Error() string {
	if e.State != "" {
		return fmt.Sprintf("server error %d (%s): %s", e.Code, e.State, e.Message)
	}
	return fmt.Sprintf("server error %d: %s", e.Code, e.Message)
}

// Server error codes callers tell apart.
const (
	ErAccessDenied         = 1045 // wrong user or password
	ErAccessDeniedNoPass   = 1698 // unknown user, or a plugin refused it
	ErDBAccessDenied       = 1044
	ErSpecificAccessDenied = 1227 // a privilege is missing (REPLICATION SLAVE)
	ErMasterFatalReading   = 1236 // the binlog position is gone or invalid
	ErNoBinaryLogging      = 1381 // "You are not using binary logging"
	ErUnknownSystemVar     = 1193
)

func parseError(p []byte) error {
	r := reader{b: p, off: 1}
	e := &ServerError{Code: r.u16("error code")}
	if r.left() > 0 && r.b[r.off] == '#' {
		r.skip(1, "sql state marker")
		e.State = string(r.bytes(5, "sql state"))
	}
	e.Message = string(r.rest())
	if r.err != nil {
		return r.err
	}
	return e
}

// IsAccessDenied reports whether err is the server refusing the user or
// password.
func IsAccessDenied(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && (se.Code == ErAccessDenied || se.Code == ErAccessDeniedNoPass)
}

// Conn is one client connection used for replication.
type Conn struct {
	pc            *packetConn
	cfg           Config
	ServerVersion string
	MariaDB       bool
	ConnectionID  uint32
	caps          uint32
	tls           bool
}

// Dial connects and authenticates.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	d := net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	network := cfg.Net
	if network == "" {
		network = "tcp"
	}
	nc, err := d.DialContext(ctx, network, cfg.Addr)
	if err != nil {
		return nil, err
	}
	c := &Conn{pc: newPacketConn(nc), cfg: cfg}
	c.pc.timeout = cfg.Timeout
	// The context may end while the handshake waits on the server.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	err = c.handshake()
	if !stop() || ctx.Err() != nil {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	c.pc.readDeadline = time.Time{}
	return c, nil
}

// NetConn is the underlying connection (to close it from another
// goroutine, which unblocks a pending read).
func (c *Conn) NetConn() net.Conn { return c.pc.nc }

// Close sends COM_QUIT and closes the connection.
func (c *Conn) Close() error {
	c.pc.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.pc.command([]byte{comQuit})
	return c.pc.nc.Close()
}

type handshake struct {
	caps     uint32
	scramble []byte
	plugin   string
}

func (c *Conn) handshake() error {
	p, err := c.pc.read()
	if err != nil {
		return fmt.Errorf("read the server greeting: %w", err)
	}
	if len(p) > 0 && p[0] == 0xff {
		return parseError(p)
	}
	hs, err := c.parseGreeting(p)
	if err != nil {
		return err
	}
	want := uint32(capLongPassword | capLongFlag | capProtocol41 | capTransactions |
		capSecureConnection | capMultiResults | capPluginAuth | capPluginAuthLenenc)
	if c.cfg.DB != "" {
		want |= capConnectWithDB
	}
	if c.cfg.TLS != nil {
		if hs.caps&capSSL == 0 {
			return errors.New("TLS was asked for but the server does not offer it (configure ssl on the server or drop tls from the DSN)")
		}
		want |= capSSL
	}
	if hs.caps&capProtocol41 == 0 {
		return errors.New("the server is too old (no 4.1 protocol)")
	}
	c.caps = want & hs.caps
	if c.cfg.TLS != nil {
		// SSLRequest: the first 32 bytes of the handshake response, then
		// the TLS handshake, then the full response over TLS.
		req := make([]byte, 0, 32)
		req = appendU32(req, c.caps)
		req = appendU32(req, maxPayload)
		req = append(req, charsetUTF8MB4)
		req = append(req, make([]byte, 23)...)
		if err := c.pc.write(req); err != nil {
			return err
		}
		tc := c.cfg.TLS.Clone()
		if tc.ServerName == "" && !tc.InsecureSkipVerify {
			host, _, _ := net.SplitHostPort(c.cfg.Addr)
			tc.ServerName = host
		}
		tlsConn := tls.Client(c.pc.nc, tc)
		if err := tlsConn.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		c.pc.nc = tlsConn
		c.pc.br.Reset(tlsConn)
		c.tls = true
	}
	plugin := hs.plugin
	if plugin == "" {
		plugin = pluginNative
	}
	authResp, err := c.authResponse(plugin, hs.scramble)
	if err != nil {
		return err
	}
	resp := make([]byte, 0, 128)
	resp = appendU32(resp, c.caps)
	resp = appendU32(resp, maxPayload)
	resp = append(resp, charsetUTF8MB4)
	resp = append(resp, make([]byte, 23)...)
	resp = append(append(resp, c.cfg.User...), 0)
	if c.caps&capPluginAuthLenenc != 0 {
		resp = appendLenenc(resp, uint64(len(authResp)))
	} else {
		resp = append(resp, byte(len(authResp)))
	}
	resp = append(resp, authResp...)
	if c.caps&capConnectWithDB != 0 {
		resp = append(append(resp, c.cfg.DB...), 0)
	}
	if c.caps&capPluginAuth != 0 {
		resp = append(append(resp, plugin...), 0)
	}
	if err := c.pc.write(resp); err != nil {
		return err
	}
	return c.authenticate(plugin, hs.scramble)
}

func (c *Conn) parseGreeting(p []byte) (handshake, error) {
	var hs handshake
	r := reader{b: p}
	if v := r.u8("protocol version"); v != 10 {
		return hs, fmt.Errorf("unsupported protocol version %d (want 10)", v)
	}
	c.ServerVersion = string(r.cstring("server version"))
	c.MariaDB = strings.Contains(c.ServerVersion, "MariaDB")
	c.ConnectionID = r.u32("connection id")
	scramble := append([]byte(nil), r.bytes(8, "auth data")...)
	r.skip(1, "filler")
	hs.caps = uint32(r.u16("capabilities"))
	authLen := 0
	if r.left() > 0 {
		r.skip(1, "charset")
		r.skip(2, "status")
		hs.caps |= uint32(r.u16("capabilities")) << 16
		authLen = int(r.u8("auth data length"))
		r.skip(10, "reserved")
		if hs.caps&capSecureConnection != 0 {
			n := max(13, authLen-8)
			part := r.bytes(n, "auth data")
			// The second part ends with a NUL that is not scramble.
			if len(part) > 0 && part[len(part)-1] == 0 {
				part = part[:len(part)-1]
			}
			scramble = append(scramble, part...)
		}
		if hs.caps&capPluginAuth != 0 {
			hs.plugin = string(r.cstring("auth plugin"))
		}
	}
	if r.err != nil {
		return hs, fmt.Errorf("server greeting: %w", r.err)
	}
	hs.scramble = scramble
	return hs, nil
}

// authenticate runs the exchange after the handshake response until the
// server's OK.
func (c *Conn) authenticate(plugin string, scramble []byte) error {
	for range 8 {
		p, err := c.pc.read()
		if err != nil {
			return fmt.Errorf("authentication: %w", err)
		}
		if len(p) == 0 {
			return malformed("empty authentication reply")
		}
		switch p[0] {
		case 0x00:
			return nil
		case 0xff:
			return parseError(p)
		case 0xfe: // switch to another plugin, with a new scramble
			r := reader{b: p, off: 1}
			plugin = string(r.cstring("auth plugin"))
			scramble = r.rest()
			if n := len(scramble); n > 0 && scramble[n-1] == 0 {
				scramble = scramble[:n-1]
			}
			scramble = append([]byte(nil), scramble...)
			resp, err := c.authResponse(plugin, scramble)
			if err != nil {
				return err
			}
			if err := c.pc.write(resp); err != nil {
				return err
			}
		case 0x01: // more data for the current plugin
			if err := c.authMoreData(plugin, scramble, p[1:]); err != nil {
				return err
			}
		default:
			return malformed("unexpected authentication reply 0x%02x", p[0])
		}
	}
	return errors.New("authentication did not finish")
}

// Exec runs a statement that returns no rows (SET, ...).
func (c *Conn) Exec(query string) error {
	_, err := c.Query(query)
	return err
}

// Query runs a statement and returns its rows as text (NULL as nil). It is
// for the few small statements of the replication setup.
func (c *Conn) Query(query string) ([][]*string, error) {
	if err := c.pc.command(append([]byte{comQuery}, query...)); err != nil {
		return nil, err
	}
	p, err := c.pc.read()
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, malformed("empty query reply")
	}
	switch p[0] {
	case 0x00:
		return nil, nil
	case 0xff:
		return nil, parseError(p)
	}
	r := reader{b: p}
	n, _ := r.lenenc("column count")
	if r.err != nil {
		return nil, r.err
	}
	for range n { // column definitions: not needed
		if _, err := c.pc.read(); err != nil {
			return nil, err
		}
	}
	if c.caps&capDeprecateEOF == 0 {
		if _, err := c.pc.read(); err != nil { // EOF after the definitions
			return nil, err
		}
	}
	var rows [][]*string
	for {
		p, err := c.pc.read()
		if err != nil {
			return nil, err
		}
		if len(p) > 0 && p[0] == 0xff {
			return nil, parseError(p)
		}
		if len(p) > 0 && p[0] == 0xfe && len(p) < 0xffffff {
			return rows, nil
		}
		r := reader{b: p}
		row := make([]*string, n)
		for i := range row {
			v, null := r.lenencBytes("column value")
			if !null {
				s := string(v)
				row[i] = &s
			}
		}
		if r.err != nil {
			return nil, r.err
		}
		rows = append(rows, row)
	}
}

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}
