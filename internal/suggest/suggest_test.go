package suggest

import "testing"

func TestDidYouMean(t *testing.T) {
	known := []string{"grpc-addr", "http-addr", "nats-addr", "db"}
	for _, c := range []struct{ name, want string }{
		{"grpc-adr", ` (did you mean "grpc-addr"?)`}, // 1 deletion < 8/3+1
		{"htp-addr", ` (did you mean "http-addr"?)`},
		{"xyz", ""},                      // "db" is 3 edits away, not < 3/3+1 = 2
		{"dbb", ` (did you mean "db"?)`}, // 1 edit < 2
		{"rpc-addr", ` (did you mean "grpc-addr"?)`},
	} {
		if got := DidYouMean(c.name, known); got != c.want {
			t.Errorf("DidYouMean(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2},
	} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func FuzzDistance(f *testing.F) {
	f.Add("kitten", "sitting")
	f.Fuzz(func(t *testing.T, a, b string) {
		d := Distance(a, b)
		if d != Distance(b, a) || d > max(len(a), len(b)) || (d == 0) != (a == b) {
			t.Fatalf("Distance(%q, %q) = %d", a, b, d)
		}
	})
}
