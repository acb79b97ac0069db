package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// Config is everything an operator can set. Each field has a flag and an
// environment variable; a flag given on the command line wins.
type Config struct {
	Addr        string
	PublicURL   string
	DataDir     string
	DatabaseURL string
	RedisURL    string
	// NodeName and NodeURL name this node among those sharing RedisURL and
	// say where the others reach its signaling socket.
	NodeName       string
	NodeURL        string
	NodeTTL        time.Duration
	MediaUDP       string
	MediaTCP       string
	MediaReaders   int
	AdaptiveProcs  bool
	AdminAddr      string
	TURNUDP        string
	TURNTCP        string
	TURNHost       string
	TURNSecretFile string
	TURNTTL        time.Duration
	PublicIPs      string
	AllowedOrigins string
	AdminToken     string
	ImportSecret   string
	CalendarDir    string
	RulesDir       string
	LinkTTL        time.Duration
	// LinkKeys lists files of older join link keys, beside the
	// DATA_DIR/joinlink.key.* ones, that still verify.
	LinkKeys string
	// NotifyWebhookURL is the operator's SMS/WeChat gateway; empty prints
	// notifications to the log. NotifyWebhookSecret signs its requests.
	NotifyWebhookURL    string
	NotifyWebhookSecret string
	// TrustedProxies are the reverse proxies (CIDRs or addresses) whose
	// X-Forwarded-For names the client, for rate limits.
	TrustedProxies string
	ResumeGrace    time.Duration
	LogLevel       string
	LogFormat      string
	Demo           bool
}

type setting struct {
	flag, env, usage string
	bind             func(fs *flag.FlagSet, name, usage string)
}

// settings lists the configuration, in the order --help shows it.
func (c *Config) settings() []setting {
	str := func(p *string, def string) func(*flag.FlagSet, string, string) {
		return func(fs *flag.FlagSet, name, usage string) { fs.StringVar(p, name, def, usage) }
	}
	return []setting{
		{"addr", "CONCORD_ADDR", "HTTP listen address", str(&c.Addr, "127.0.0.1:8080")},
		{"public-url", "CONCORD_PUBLIC_URL", "base URL of join links (default: http://ADDR)", str(&c.PublicURL, "")},
		{"data-dir", "CONCORD_DATA_DIR", "folder for the embedded case store and the signing key", str(&c.DataDir, "concord-data")},
		{"database-url", "CONCORD_DATABASE_URL", "PostgreSQL URL (postgres://...); empty uses the embedded store", str(&c.DatabaseURL, "")},
		{"redis-url", "CONCORD_REDIS_URL", "Redis URL (redis://...) shared by the nodes of a cluster; empty runs a single node", str(&c.RedisURL, "")},
		{"node-name", "CONCORD_NODE_NAME", "this node's name in the cluster, unique among live nodes (default: the host name and a random suffix)", str(&c.NodeName, "")},
		{"node-ttl", "CONCORD_NODE_TTL", "how long a silent node counts as alive; its rooms move to other nodes after it", func(fs *flag.FlagSet, name, usage string) {
			fs.DurationVar(&c.NodeTTL, name, 10*time.Second, usage)
		}},
		{"node-url", "CONCORD_NODE_URL", "where the cluster's other nodes reach this node's signaling, ws://HOST:PORT/ws (default: from addr, or the host name when addr has no host)", str(&c.NodeURL, "")},
		{"media-udp", "CONCORD_MEDIA_UDP", "the one UDP address for all media", str(&c.MediaUDP, "127.0.0.1:7881")},
		{"media-readers", "CONCORD_MEDIA_READERS", "goroutines that read and forward media, each on its own socket of the media UDP address (0: one per core)", func(fs *flag.FlagSet, name, usage string) {
			fs.IntVar(&c.MediaReaders, name, 0, usage)
		}},
		{"adaptive-procs", "CONCORD_ADAPTIVE_PROCS", "run Go on one core while the server uses less than half of one, on all when it needs more: less scheduling work when not busy (false: always all)", func(fs *flag.FlagSet, name, usage string) {
			fs.BoolVar(&c.AdaptiveProcs, name, true, usage)
		}},
		{"admin-addr", "CONCORD_ADMIN_ADDR", "admin address for /metrics and /debug/pprof (keep it private; empty disables it)", str(&c.AdminAddr, "127.0.0.1:9090")},
		{"media-tcp", "CONCORD_MEDIA_TCP", "the one TCP address for ICE over TCP, the fallback when UDP is blocked (empty disables it)", str(&c.MediaTCP, "127.0.0.1:7881")},
		{"turn-udp", "CONCORD_TURN_UDP", "UDP address of the embedded TURN server, e.g. 0.0.0.0:3478 (empty: no TURN)", str(&c.TURNUDP, "")},
		{"turn-tcp", "CONCORD_TURN_TCP", "TCP address of the embedded TURN server, e.g. 0.0.0.0:3478", str(&c.TURNTCP, "")},
		{"turn-host", "CONCORD_TURN_HOST", "host name or IP in the turn: URLs handed to clients (default: the public IP)", str(&c.TURNHost, "")},
		{"turn-secret-file", "CONCORD_TURN_SECRET_FILE", "file holding the TURN credential secret shared by all nodes (default: one generated into the data folder)", str(&c.TURNSecretFile, "")},
		{"turn-ttl", "CONCORD_TURN_TTL", "how long TURN credentials handed out at join stay valid", func(fs *flag.FlagSet, name, usage string) {
			fs.DurationVar(&c.TURNTTL, name, 12*time.Hour, usage)
		}},
		{"public-ip", "CONCORD_PUBLIC_IP", "comma-separated public IPs announced for media (NAT 1:1)", str(&c.PublicIPs, "")},
		{"allowed-origins", "CONCORD_ALLOWED_ORIGINS", "comma-separated extra web origins allowed to open signaling sockets", str(&c.AllowedOrigins, "")},
		{"admin-token", "CONCORD_ADMIN_TOKEN", "the operator's bearer token for the staff API (empty disables it; --demo generates one)", str(&c.AdminToken, "")},
		{"import-secret", "CONCORD_IMPORT_SECRET", "HMAC key external platforms sign case imports with (empty disables imports)", str(&c.ImportSecret, "")},
		{"calendar-dir", "CONCORD_CALENDAR_DIR", "folder of YYYY.json working-day calendars overriding the built-in ones", str(&c.CalendarDir, "")},
		{"rules-dir", "CONCORD_RULES_DIR", "folder of rule-set files overriding the built-in ones", str(&c.RulesDir, "")},
		{"link-ttl", "CONCORD_LINK_TTL", "how long join links stay valid", func(fs *flag.FlagSet, name, usage string) {
			fs.DurationVar(&c.LinkTTL, name, 72*time.Hour, usage)
		}},
		{"link-keys", "CONCORD_LINK_KEYS", "comma-separated files of older join link keys that still verify (DATA_DIR/joinlink.key.* are read anyway)", str(&c.LinkKeys, "")},
		{"notify-webhook-url", "CONCORD_NOTIFY_WEBHOOK_URL", "the SMS/WeChat gateway join links are posted to (empty prints them to the log)", str(&c.NotifyWebhookURL, "")},
		{"notify-webhook-secret", "CONCORD_NOTIFY_WEBHOOK_SECRET", "HMAC key that signs the requests to the gateway", str(&c.NotifyWebhookSecret, "")},
		{"trusted-proxies", "CONCORD_TRUSTED_PROXIES", "comma-separated reverse proxy CIDRs whose X-Forwarded-For names the client", str(&c.TrustedProxies, "")},
		{"resume-grace", "CONCORD_RESUME_GRACE", "how long a participant whose connection dropped keeps its place", func(fs *flag.FlagSet, name, usage string) {
			fs.DurationVar(&c.ResumeGrace, name, 20*time.Second, usage)
		}},
		{"log-level", "CONCORD_LOG_LEVEL", "debug, info, warn or error", str(&c.LogLevel, "info")},
		{"log-format", "CONCORD_LOG_FORMAT", "text or json", str(&c.LogFormat, "text")},
		{"demo", "CONCORD_DEMO", "create a demo case and print its join links", func(fs *flag.FlagSet, name, usage string) {
			fs.BoolVar(&c.Demo, name, false, usage)
		}},
	}
}

// errHelp is returned when the user asked for help.
var errHelp = flag.ErrHelp

// parseConfig reads defaults, then the environment, then the flags. An
// unknown CONCORD_ variable or flag is an error.
func parseConfig(cmd string, args []string, environ []string, out io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("concord "+cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	sets := c.settings()
	known := map[string]string{}
	for _, s := range sets {
		s.bind(fs, s.flag, s.usage+" ["+s.env+"]")
		known[s.env] = s.flag
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: concord %s [flags]\n\nFlags (each also read from the environment variable in brackets):\n", cmd)
		fs.PrintDefaults()
	}
	var unknown []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "CONCORD_") || strings.HasPrefix(k, "CONCORD_TEST_") {
			continue
		}
		name, ok := known[k]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return c, fmt.Errorf("%s: %w", k, err)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return c, fmt.Errorf("unknown environment variables: %s", strings.Join(unknown, ", "))
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	if _, _, err := net.SplitHostPort(c.MediaUDP); err != nil {
		errs = append(errs, fmt.Errorf("media-udp %q: %w", c.MediaUDP, err))
	}
	if c.MediaReaders < 0 || c.MediaReaders > 64 {
		errs = append(errs, fmt.Errorf("media-readers %d: want 0 (one per core) to 64", c.MediaReaders))
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, errors.New("database-url must be a postgres:// URL"))
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		errs = append(errs, errors.New("redis-url must be a redis:// or rediss:// URL"))
	}
	if c.NodeTTL < 300*time.Millisecond || c.NodeTTL > 5*time.Minute {
		errs = append(errs, errors.New("node-ttl must be between 300ms and 5m"))
	}
	if c.NodeURL != "" {
		if u, err := url.Parse(c.NodeURL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			errs = append(errs, errors.New("node-url must be a ws:// or wss:// URL"))
		}
	}
	for name, addr := range map[string]string{"admin-addr": c.AdminAddr, "media-tcp": c.MediaTCP, "turn-udp": c.TURNUDP, "turn-tcp": c.TURNTCP} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, addr, err))
		}
	}
	if c.TURNTTL < time.Minute || c.TURNTTL > 7*24*time.Hour {
		errs = append(errs, errors.New("turn-ttl must be between 1m and 168h"))
	}
	for _, ip := range c.publicIPs() {
		if net.ParseIP(ip) == nil {
			errs = append(errs, fmt.Errorf("public-ip %q is not an IP address", ip))
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 24 {
		errs = append(errs, errors.New("admin-token must be at least 24 characters"))
	}
	if c.LinkTTL <= 0 || c.LinkTTL > 30*24*time.Hour {
		errs = append(errs, errors.New("link-ttl must be between 1s and 720h"))
	}
	if c.NotifyWebhookURL != "" {
		u, err := url.Parse(c.NotifyWebhookURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			errs = append(errs, errors.New("notify-webhook-url must be an https:// URL"))
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			errs = append(errs, errors.New("notify-webhook-url must be https:// unless the gateway is on this host"))
		}
	}
	if _, err := c.trustedProxies(); err != nil {
		errs = append(errs, err)
	}
	if c.ResumeGrace < 0 || c.ResumeGrace > 10*time.Minute {
		errs = append(errs, errors.New("resume-grace must be between 0 and 10m"))
	}
	if _, err := c.level(); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, errors.New("log-format must be text or json"))
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (c *Config) publicIPs() []string { return splitList(c.PublicIPs) }

// trustedProxies parses TrustedProxies: CIDRs or single addresses.
func (c *Config) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range splitList(c.TrustedProxies) {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("trusted-proxies %q is not a CIDR or an address", v)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func (c *Config) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("log-level %q: must be debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// logger builds the process logger.
func (c *Config) logger(w io.Writer) *slog.Logger {
	lvl, _ := c.level()
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// environ is the process environment; tests pass their own.
func environ() []string { return os.Environ() }
