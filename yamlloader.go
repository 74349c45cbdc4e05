package main

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/loader"
)

// LoaderConfig is a group's `loader:` block: a type, and that type's own keys, which its
// loader.Factory decodes (through a sectionDecoder) and validates, so that a custom type
// registered on the node's loader.Registry gets keys of its own with the built-ins' errors.
type LoaderConfig struct {
	// Type names the loader type: file, http, sql or a registered one. Required.
	Type string
	// Settings is the type's decoded and validated settings (loader.FileConfig, ...); the
	// loader is built from it when the node starts. Nil: the block is missing.
	Settings loader.Config
}

// decodeYAML reads a `loader:` block: its `type:`, then the rest of its keys through the
// type's factory. Every error is recorded as a *ConfigError at the line of the key concerned.
func (lc *LoaderConfig) decodeYAML(d *yamlDecoder, n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of keys to values such as {type: file, root: ./data}, got %s", kindName(n))
		return
	}
	typePath := path + ".type"
	var typ *yaml.Node
	section := &yaml.Node{Kind: yaml.MappingNode, Tag: n.Tag, Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		switch {
		case k.Value != "type":
			section.Content = append(section.Content, k, val)
		case typ != nil:
			d.errorf(k, typePath, "duplicate key %q", k.Value)
		default:
			if val.Kind == yaml.AliasNode {
				val = val.Alias
			}
			typ = val
			d.lines[typePath] = val.Line
		}
	}
	known := strings.Join(d.loaders.Types(), ", ")
	if typ == nil || typ.Tag == "!!null" {
		d.errorf(n, typePath, "required: one of %s", known)
		return
	}
	if !d.scalar(typ, typePath, "a loader type ("+known+")") {
		return
	}
	sd := &sectionDecoder{d: d, node: section, path: path}
	settings, err := d.loaders.Decode(typ.Value, sd)
	if err == nil {
		lc.Type, lc.Settings = typ.Value, settings
		return
	}
	for _, e := range leaves(err) {
		var ce *ConfigError
		var fe *group.FieldError
		switch {
		case errors.As(e, &ce):
			d.errs = append(d.errs, ce)
		case errors.Is(e, loader.ErrUnknownType):
			d.errorf(typ, typePath, "%v", e)
		case errors.As(e, &fe) && sd.settings != nil:
			p := path + "." + snakeCase(fe.Field)
			if key, ok := fieldKey(sd.settings, fe.Field); ok {
				p = path + "." + key
			}
			d.errs = append(d.errs, &ConfigError{File: d.file, Line: lineOf(d.lines, p), Path: p, Msg: fe.Err.Error()})
		default:
			d.errorf(n, path, "loader %q: %v", typ.Value, e)
		}
	}
}

// sectionDecoder is the loader.Decoder of one `loader:` block: the yamlDecoder's strict rules
// over the block's keys but `type`. It collects the errors of each Decode and hands them to
// the factory, which returns them; decodeYAML records them.
type sectionDecoder struct {
	d    *yamlDecoder
	node *yaml.Node
	path string

	// settings is the struct type last decoded into, which the factory's Validate names
	// fields of.
	settings reflect.Type
}

var _ loader.Decoder = (*sectionDecoder)(nil)

// Decode stores the section in v, a non-nil pointer to a struct.
func (s *sectionDecoder) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("the loader's factory passed %T to Decode, want a pointer to a struct", v)
	}
	s.settings = rv.Elem().Type()
	start := len(s.d.errs)
	s.d.decode(s.node, s.path, rv.Elem())
	errs := append([]error(nil), s.d.errs[start:]...)
	s.d.errs = s.d.errs[:start]
	return errors.Join(errs...)
}

// leaves lists the errors of a tree made by errors.Join (and by fmt.Errorf wrapping a joined
// error), each leaf as it is; none for nil.
func leaves(err error) []error {
	switch e := err.(type) {
	case nil:
		return nil
	case interface{ Unwrap() []error }:
		var out []error
		for _, inner := range e.Unwrap() {
			out = append(out, leaves(inner)...)
		}
		return out
	case interface{ Unwrap() error }:
		if _, joined := e.Unwrap().(interface{ Unwrap() []error }); joined {
			return leaves(e.Unwrap())
		}
	}
	return []error{err}
}

// lineOf is the line of path, or of its nearest ancestor the file has (a key left out is
// blamed on the block it belongs in); 0 when none.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if line, ok := lines[path]; ok {
			return line
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}
