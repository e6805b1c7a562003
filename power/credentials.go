package power

import (
	"bytes"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// Credentials log in to a BMC.
type Credentials struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// CredentialFile is serve's --power-credentials file:
// {default: {username, password}, hosts: {NAME: {username, password}}}.
type CredentialFile struct {
	Default *Credentials           `yaml:"default"`
	Hosts   map[string]Credentials `yaml:"hosts"`
}

// For returns the host's credentials, else the default ones.
func (f *CredentialFile) For(host string) (Credentials, bool) {
	if f == nil {
		return Credentials{}, false
	}
	if c, ok := f.Hosts[host]; ok {
		return c, true
	}
	if f.Default != nil {
		return *f.Default, true
	}
	return Credentials{}, false
}

// LoadCredentials reads and checks a credentials file. Errors name the
// file and never quote a password.
func LoadCredentials(path string) (*CredentialFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("power credentials: %w", err)
	}
	f, err := ParseCredentials(b)
	if err != nil {
		return nil, fmt.Errorf("power credentials %s: %w", path, err)
	}
	return f, nil
}

// ParseCredentials reads the YAML of a credentials file; unknown keys are
// refused, so a misspelt "pasword" is not silently an empty password.
func ParseCredentials(b []byte) (*CredentialFile, error) {
	var f CredentialFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if err.Error() == "EOF" {
			return &CredentialFile{}, nil
		}
		return nil, err
	}
	check := func(where string, c Credentials) error {
		if c.Username == "" {
			return fmt.Errorf("%s: username is empty", where)
		}
		return nil
	}
	if f.Default != nil {
		if err := check("default", *f.Default); err != nil {
			return nil, err
		}
	}
	for h, c := range f.Hosts {
		if err := check(fmt.Sprintf("hosts[%q]", clip(h)), c); err != nil {
			return nil, err
		}
	}
	return &f, nil
}
