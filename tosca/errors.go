package tosca

import (
	"fmt"
	"strconv"
)

// Error is a problem in a template, located by file, line and path.
type Error struct {
	File string
	// Line is 1-based; 0 when unknown.
	Line int
	// Path locates the value in the template, as "node_templates.web.requirements[0].host"
	// (paths inside topology_template leave that prefix out); "" for the whole file.
	Path string
	Msg  string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Path != "" {
		s += ": " + e.Path
	}
	return s + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// at is a location in a file: where a value is, for its errors.
type at struct {
	file string
	line int
	path string
}

func (a at) errorf(format string, args ...any) *Error {
	return &Error{File: a.file, Line: a.line, Path: a.path, Msg: fmt.Sprintf(format, args...)}
}

// wrap keeps err reachable through errors.Is/As.
func (a at) wrap(err error, format string, args ...any) *Error {
	e := a.errorf(format, args...)
	e.Err = err
	e.Msg += ": " + err.Error()
	return e
}

// child returns the location of a key under a (line of the key's node).
func (a at) child(key string, line int) at {
	p := short(key) // a path says where a value is, it need not repeat it
	if a.path != "" {
		p = a.path + "." + p
	}
	if line == 0 {
		line = a.line
	}
	return at{file: a.file, line: line, path: p}
}

// index returns the location of element i of a sequence under a.
func (a at) index(i, line int) at {
	if line == 0 {
		line = a.line
	}
	return at{file: a.file, line: line, path: a.path + "[" + strconv.Itoa(i) + "]"}
}
