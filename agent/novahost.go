package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// NovaConfHost reads [DEFAULT] host from nova.conf (oslo.config's INI
// dialect: "key = value" or "key: value", # and ; comments, section names
// case-sensitive, the last value wins). It returns "" when the file or the
// option is absent.
func NovaConfHost(data []byte) (string, error) {
	section, host := "", ""
	lineNo := 0
	for line := range bytes.Lines(data) {
		lineNo++
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' || s[0] == ';' {
			continue
		}
		if s[0] == '[' {
			if !strings.HasSuffix(s, "]") {
				return "", fmt.Errorf("line %d: unterminated section header %q", lineNo, truncate(s))
			}
			section = strings.TrimSpace(s[1 : len(s)-1])
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // a continuation of the previous value
		}
		k, v, ok := strings.Cut(s, "=")
		if i := strings.IndexByte(s, ':'); i >= 0 && (!ok || i < len(k)) {
			k, v, ok = s[:i], s[i+1:], true
		}
		if !ok {
			return "", fmt.Errorf("line %d: %q is neither a section nor key = value", lineNo, truncate(s))
		}
		if section == "DEFAULT" && strings.TrimSpace(k) == "host" {
			host = strings.TrimSpace(v)
		}
	}
	return host, nil
}

// HostName is the name nova-compute uses: CONF.host from the nova.conf at
// path, else the machine's hostname (Nova's default for CONF.host).
func HostName(novaConf string) (string, error) {
	if novaConf != "" {
		data, err := os.ReadFile(novaConf)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return "", fmt.Errorf("--nova-conf: %w", err)
		default:
			h, err := NovaConfHost(data)
			if err != nil {
				return "", fmt.Errorf("--nova-conf %s: %w", novaConf, err)
			}
			if h != "" {
				return h, nil
			}
		}
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("hostname: %w", err)
	}
	return h, nil
}
