package container

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// writeTar sends the trees dirs (archive prefix → directory) as one tar
// stream: regular files, directories, symlinks and device nodes, with owner,
// mode and times (CRIU checks the files a process has open or mapped).
func writeTar(w io.Writer, dirs [][2]string) error {
	ts := newTarStream(w)
	for _, d := range dirs {
		if err := ts.add(d[0], d[1]); err != nil {
			return err
		}
	}
	return ts.close()
}

// tarStream is one tar stream written tree by tree: pre-copy sends each
// round's images as the round ends, then the rest.
type tarStream struct{ tw *tar.Writer }

func newTarStream(w io.Writer) *tarStream { return &tarStream{tw: tar.NewWriter(w)} }

func (ts *tarStream) close() error { return ts.tw.Close() }

// add sends the tree root under the archive prefix.
func (ts *tarStream) add(prefix, root string) error {
	tw := ts.tw
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if info.Mode()&(fs.ModeSocket|fs.ModeNamedPipe) != 0 {
			return nil // runtime endpoints: recreated by their owners
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		h.Name = path.Join(prefix, filepath.ToSlash(rel))
		if info.IsDir() {
			h.Name += "/"
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sending %s: %w", root, err)
	}
	return nil
}

// readTar unpacks a stream from writeTar; dest maps each archive prefix to
// the directory it goes to, and more (when not nil) admits further
// prefixes, making their directory. Every write goes through an os.Root,
// so no entry (a "..", an absolute name, or a path through a symlink the
// stream made) lands outside them.
func readTar(r io.Reader, dest map[string]string, more func(prefix string) (string, bool)) error {
	roots := map[string]*os.Root{}
	defer func() {
		for _, rt := range roots {
			rt.Close()
		}
	}()
	for prefix, dir := range dest {
		rt, err := os.OpenRoot(dir)
		if err != nil {
			return fmt.Errorf("receiving: %w", err)
		}
		roots[prefix] = rt
	}
	tr := tar.NewReader(r)
	type dirTime struct {
		rt  *os.Root
		rel string
		t   time.Time
	}
	var dirs []dirTime
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("receiving: %w", err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		prefix, rel, _ := strings.Cut(name, "/")
		rt, ok := roots[prefix]
		if !ok && more != nil {
			if dir, ok2 := more(prefix); ok2 {
				if rt, err = os.OpenRoot(dir); err != nil {
					return fmt.Errorf("receiving: %w", err)
				}
				roots[prefix], ok = rt, true
			}
		}
		if rel == "" {
			rel = "."
		}
		if !ok || !filepath.IsLocal(rel) {
			return fmt.Errorf("receiving: entry %.100q is outside the migration", h.Name)
		}
		mode := uint32(h.Mode & 0o7777)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := rt.MkdirAll(rel, 0o700); err != nil {
				return fmt.Errorf("receiving %.100s: %w", h.Name, err)
			}
			dirs = append(dirs, dirTime{rt, rel, h.ModTime})
		case tar.TypeReg:
			f, err := rt.OpenFile(rel, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return fmt.Errorf("receiving %.100s: %w", h.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("receiving %.100s: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			if err := rt.Symlink(h.Linkname, rel); err != nil {
				return fmt.Errorf("receiving %.100s: %w", h.Name, err)
			}
		case tar.TypeChar, tar.TypeBlock:
			// os.Root has no mknod: the parent must resolve inside the
			// root (no symlink out of it), then the node is made there.
			if _, err := rt.Stat(filepath.Dir(rel)); err != nil {
				return fmt.Errorf("receiving %.100s: %w", h.Name, err)
			}
			kind := uint32(syscall.S_IFCHR)
			if h.Typeflag == tar.TypeBlock {
				kind = syscall.S_IFBLK
			}
			dev := int((h.Devmajor << 8) | (h.Devminor & 0xff) | ((h.Devminor &^ 0xff) << 12))
			if err := syscall.Mknod(filepath.Join(rt.Name(), rel), kind|mode, dev); err != nil {
				return fmt.Errorf("receiving %.100s: %w", h.Name, err)
			}
		default:
			return fmt.Errorf("receiving: entry %.100q of type %q not supported", h.Name, h.Typeflag)
		}
		if err := rt.Lchown(rel, h.Uid, h.Gid); err != nil {
			return fmt.Errorf("receiving %.100s: %w", h.Name, err)
		}
		if h.Typeflag != tar.TypeSymlink {
			if err := rt.Chmod(rel, fs.FileMode(mode&0o777)|modeBits(mode)); err != nil {
				return fmt.Errorf("receiving %.100s: %w", h.Name, err)
			}
			if h.Typeflag != tar.TypeDir {
				if err := rt.Chtimes(rel, h.ModTime, h.ModTime); err != nil {
					return fmt.Errorf("receiving %.100s: %w", h.Name, err)
				}
			}
		}
	}
	// Directory times last: creating their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = dirs[i].rt.Chtimes(dirs[i].rel, dirs[i].t, dirs[i].t)
	}
	return nil
}

func modeBits(m uint32) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// relay accepts one connection on ln and joins it to target, counting the
// bytes both ways; CRIU's page server listens on loopback and the agent
// exposes it to its peer only for this migration. It ends with ctx or when
// the connection closes.
type relay struct {
	ln    net.Listener
	bytes atomic.Int64
	wg    sync.WaitGroup
}

func startRelay(ctx context.Context, listenHost, target string) (*relay, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	if err != nil {
		return nil, fmt.Errorf("page relay: %w", err)
	}
	r := &relay{ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		stop := context.AfterFunc(ctx, func() { ln.Close() })
		defer stop()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				stopConn := context.AfterFunc(ctx, func() { in.Close(); out.Close() })
				defer stopConn()
				var inner sync.WaitGroup
				inner.Add(1)
				go func() {
					defer inner.Done()
					n, _ := io.Copy(out, in)
					r.bytes.Add(n)
					if tc, ok := out.(*net.TCPConn); ok {
						_ = tc.CloseWrite()
					}
				}()
				n, _ := io.Copy(in, out)
				r.bytes.Add(n)
				if tc, ok := in.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				inner.Wait()
				in.Close()
				out.Close()
			}()
		}
	}()
	return r, nil
}

func (r *relay) Addr() string { return r.ln.Addr().String() }

// Close stops accepting and waits for the relayed connections to end.
func (r *relay) Close() {
	r.ln.Close()
	r.wg.Wait()
}

// freePort finds a free loopback TCP port for a CRIU page server (CRIU
// takes a port number, not a listener).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// listening reports whether something listens on 127.0.0.1:port
// (/proc/net/tcp state 0A), without connecting: CRIU's page server takes
// exactly one connection.
func listening(port int) bool {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == want && f[3] == "0A" {
			return true
		}
	}
	return false
}
