package openstack

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
)

// Token is what Keystone says of a validated token.
type Token struct {
	User, Project string
	Roles         []string
	Expires       time.Time
}

// TokenValidator validates Keystone tokens (GET /v3/auth/tokens, the token
// authenticating its own check, so the service needs no credentials of its
// own) and caches each answer until the token expires.
type TokenValidator struct {
	endpoint string // …/v3/
	http     *http.Client
	now      func() time.Time
	maxCache int

	mu    sync.Mutex
	cache map[[32]byte]Token // by the token's digest: no token kept in memory
}

// NewTokenValidator validates against Keystone at url (its /v3 base, e.g.
// http://keystone:5000/v3).
func NewTokenValidator(url string, hc *http.Client) (*TokenValidator, error) {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("--keystone-url %q: want an http:// or https:// URL of Keystone's /v3", url)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	url = strings.TrimSuffix(url, "/")
	if !strings.HasSuffix(url, "/v3") {
		url += "/v3"
	}
	return &TokenValidator{endpoint: url + "/", http: hc, now: time.Now, maxCache: 10000, cache: map[[32]byte]Token{}}, nil
}

// ErrTokenRefused says Keystone does not know the token (or it expired).
var ErrTokenRefused = errors.New("token not valid")

// Validate returns the token's user, project and roles.
func (v *TokenValidator) Validate(ctx context.Context, token string) (Token, error) {
	key := sha256.Sum256([]byte(token))
	now := v.now()
	v.mu.Lock()
	t, ok := v.cache[key]
	if ok && !now.Before(t.Expires) {
		delete(v.cache, key)
		ok = false
	}
	v.mu.Unlock()
	if ok {
		return t, nil
	}
	sc := &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{TokenID: token, HTTPClient: *v.http},
		Endpoint:       v.endpoint,
	}
	r := tokens.Get(ctx, sc, token)
	if r.Err != nil {
		if gophercloud.ResponseCodeIs(r.Err, http.StatusNotFound) || gophercloud.ResponseCodeIs(r.Err, http.StatusUnauthorized) {
			return Token{}, ErrTokenRefused
		}
		return Token{}, fmt.Errorf("keystone %s: %w", v.endpoint, r.Err)
	}
	tok, err := r.ExtractToken()
	if err != nil {
		return Token{}, fmt.Errorf("keystone answer: %w", err)
	}
	user, err := r.ExtractUser()
	if err != nil {
		return Token{}, fmt.Errorf("keystone answer: %w", err)
	}
	roles, err := r.ExtractRoles()
	if err != nil {
		return Token{}, fmt.Errorf("keystone answer: %w", err)
	}
	t = Token{User: user.Name, Expires: tok.ExpiresAt}
	if p, err := r.ExtractProject(); err == nil && p != nil {
		t.Project = p.Name
	}
	for _, role := range roles {
		t.Roles = append(t.Roles, role.Name)
	}
	if !now.Before(t.Expires) {
		return Token{}, ErrTokenRefused
	}
	v.mu.Lock()
	if len(v.cache) >= v.maxCache {
		for k, old := range v.cache { // drop the expired, else one at random: the cache is only a shortcut
			if !now.Before(old.Expires) || len(v.cache) >= v.maxCache {
				delete(v.cache, k)
			}
		}
	}
	v.cache[key] = t
	v.mu.Unlock()
	return t, nil
}
