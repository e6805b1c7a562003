package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNovaConfHost(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"set", "[DEFAULT]\nhost = compute-12\n", "compute-12"},
		{"colon and comments", "# nova\n[DEFAULT]\n; x\nhost: compute-3\n", "compute-3"},
		{"last wins", "[DEFAULT]\nhost=a\nhost = b\n", "b"},
		{"other section", "[DEFAULT]\nmy_ip = 10.0.0.1\n[libvirt]\nhost = qemu\n", ""},
		{"continuation ignored", "[DEFAULT]\nhost = c1\n  more\n", "c1"},
		{"url value", "[DEFAULT]\ntransport_url = rabbit://u:p@h:5672/\nhost = c2\n", "c2"},
		{"absent", "", ""},
	} {
		got, err := NovaConfHost([]byte(c.in))
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	for _, bad := range []string{"[DEFAULT\nhost = x\n", "[DEFAULT]\njust words\n"} {
		if _, err := NovaConfHost([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestHostName(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "nova.conf")
	if err := os.WriteFile(conf, []byte("[DEFAULT]\nhost = compute-7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h, err := HostName(conf); err != nil || h != "compute-7" {
		t.Errorf("from nova.conf: %q, %v", h, err)
	}
	want, _ := os.Hostname()
	if h, err := HostName(filepath.Join(dir, "absent.conf")); err != nil || h != want {
		t.Errorf("no nova.conf: %q, %v; want the hostname %q", h, err, want)
	}
}

func FuzzNovaConfHost(f *testing.F) {
	for _, s := range []string{"[DEFAULT]\nhost = compute-12\n", "[DEFAULT\n", "host: x\n", "[a]\n[DEFAULT]\nhost=\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := NovaConfHost(data)
		if err != nil && h != "" {
			t.Fatalf("error %v with host %q", err, h)
		}
	})
}
