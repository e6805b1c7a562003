package tosca

import (
	"strings"

	"github.com/ecrae/ecrae/optimizer"
)

// ImageMap maps a compute node's os capability (type, distribution,
// version, architecture) to a Glance image. It is read from a YAML file:
//
//	images:
//	  - {distribution: ubuntu, version: "20.04", architecture: x86_64, image: ubuntu-20.04-amd64}
//	  - {distribution: ubuntu, version: "20.04", architecture: aarch64, image: ubuntu-20.04-arm64}
//	  - {image: cirros}   # no fields: matches anything, the last resort
//
// An entry matches when every field it sets equals the node's (case
// aside; architectures compare after folding aliases such as amd64). The
// entry setting the most fields wins; ties go to the first.
type ImageMap struct {
	file    string
	entries []imageEntry
}

type imageEntry struct {
	fields map[string]string // os property → value
	image  string
	loc    at
}

var osProps = []string{"type", "distribution", "version", "architecture"}

// ParseImageMap reads an image map file.
func ParseImageMap(file string, data []byte) (*ImageMap, error) {
	m, err := parseImageMap(file, data)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func parseImageMap(file string, data []byte) (*ImageMap, *Error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	a := at{file: file, line: root.Line}
	top, err := pairs(root, a)
	if err != nil {
		return nil, err
	}
	if err := checkKeys(top, a, "an image map", "images"); err != nil {
		return nil, err
	}
	m := &ImageMap{file: file}
	for _, p := range top {
		its, err := items(p.v, a.child(p.key, p.k.Line))
		if err != nil {
			return nil, err
		}
		for i, it := range its {
			ia := a.child(p.key, p.k.Line).index(i, it.Line)
			ps, err := pairs(it, ia)
			if err != nil {
				return nil, err
			}
			if err := checkKeys(ps, ia, "an image map entry", append([]string{"image"}, osProps...)...); err != nil {
				return nil, err
			}
			e := imageEntry{fields: map[string]string{}, loc: ia}
			for _, q := range ps {
				v, err := scalar(q.v, ia.child(q.key, q.k.Line))
				if err != nil {
					return nil, err
				}
				if q.key == "image" {
					e.image = v
				} else {
					e.fields[q.key] = v
				}
			}
			if e.image == "" {
				return nil, ia.errorf("needs an image")
			}
			m.entries = append(m.entries, e)
		}
	}
	return m, nil
}

// lookup finds the image for a node's os properties.
func (m *ImageMap) lookup(os map[string]string) (string, bool) {
	best, bestN := -1, -1
	for i, e := range m.entries {
		ok := true
		for k, v := range e.fields {
			got := os[k]
			if k == "architecture" {
				v, got = optimizer.NormalizeISA(v), optimizer.NormalizeISA(got)
			}
			if !strings.EqualFold(v, got) {
				ok = false
				break
			}
		}
		if ok && len(e.fields) > bestN {
			best, bestN = i, len(e.fields)
		}
	}
	if best < 0 {
		return "", false
	}
	return m.entries[best].image, true
}
