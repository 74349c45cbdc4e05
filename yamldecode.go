package main

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// yamlDecoder fills Go values from a parsed YAML document, field by field, so that every
// mistake is reported with the file, the line and the key path, and so that a key the program
// does not know is an error rather than silently ignored (yaml.v3's KnownFields reports Go
// type names and stops at the first error; a user needs every mistake, in their own terms).
//
// Fields are matched by their `yaml:"name"` tag. Supported field types: string, bool, integer
// and float kinds, time.Duration ("30s"), encoding.TextUnmarshaler (group.ByteSize: "64MiB"),
// []T, map[string]string and nested structs. A null value leaves the field as it was, so
// defaults set before decoding survive. Each new element of a slice of structs starts from
// the element's defaults when its pointer implements defaulter.
type yamlDecoder struct {
	file  string
	lines map[string]int // key path ("groups[0].ttl") → line of its value
	errs  []error

	// nodes counts the nodes visited: aliases are followed, so a small document of nested
	// aliases could otherwise expand into billions of them.
	nodes int
}

// maxDecodeNodes bounds the nodes one document may expand to, aliases included. A real
// configuration has a few hundred.
const maxDecodeNodes = 100_000

// defaulter is implemented by config types whose zero value is not their default.
type defaulter interface{ setDefaults() }

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (d *yamlDecoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// decode stores n into v, which must be settable.
func (d *yamlDecoder) decode(n *yaml.Node, path string, v reflect.Value) {
	if d.nodes++; d.nodes > maxDecodeNodes {
		if d.nodes == maxDecodeNodes+1 {
			d.errorf(n, path, "the document expands to more than %d values (aliases included)", maxDecodeNodes)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		d.decode(n.Content[0], path, v)
		return
	}
	d.lines[path] = n.Line
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshalerType) {
		if !d.scalar(n, path, "a value such as 64MiB") {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.errorf(n, path, "%v", err)
		}
		return
	}
	if v.Type() == durationType {
		if !d.scalar(n, path, "a duration such as 30s") {
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.errorf(n, path, "invalid duration %q: want a number with a unit, such as 500ms, 30s or 5m", n.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.String:
		if d.scalar(n, path, "a string") {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		if !d.scalar(n, path, "true or false") {
			return
		}
		switch n.Value {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.errorf(n, path, "invalid boolean %q: want true or false", n.Value)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !d.scalar(n, path, "an integer") {
			return
		}
		i, err := strconv.ParseInt(n.Value, 10, v.Type().Bits())
		if err != nil {
			d.errorf(n, path, "invalid integer %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float32, reflect.Float64:
		if !d.scalar(n, path, "a number") {
			return
		}
		f, err := strconv.ParseFloat(n.Value, v.Type().Bits())
		if err != nil {
			d.errorf(n, path, "invalid number %q", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		d.slice(n, path, v)
	case reflect.Map:
		d.stringMap(n, path, v)
	case reflect.Struct:
		d.structure(n, path, v)
	default:
		panic(fmt.Sprintf("config: field %s has unsupported type %s", path, v.Type()))
	}
}

// scalar reports whether n is a single value, and records an error if not.
func (d *yamlDecoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "want %s, got %s", want, kindName(n))
		return false
	}
	return true
}

func (d *yamlDecoder) slice(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list, got %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		v.SetZero()
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		elem := out.Index(i)
		if def, ok := elem.Addr().Interface().(defaulter); ok {
			def.setDefaults()
		}
		d.decode(item, fmt.Sprintf("%s[%d]", path, i), elem)
	}
	v.Set(out)
}

func (d *yamlDecoder) stringMap(n *yaml.Node, path string, v reflect.Value) {
	if v.Type().Key().Kind() != reflect.String {
		panic(fmt.Sprintf("config: field %s has unsupported type %s", path, v.Type()))
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of names to values, got %s", kindName(n))
		return
	}
	out := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if out.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.errorf(k, path, "duplicate key %q", k.Value)
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, path+"."+k.Value, elem)
		out.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
	}
	v.Set(out)
}

func (d *yamlDecoder) structure(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of keys to values, got %s", kindName(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		sub := k.Value
		if path != "" {
			sub = path + "." + k.Value
		}
		idx, ok := fields[k.Value]
		switch {
		case !ok:
			d.errorf(k, sub, "unknown key %q (known keys here: %s)", k.Value, knownKeys(v.Type()))
		case seen[k.Value]:
			d.errorf(k, sub, "duplicate key %q", k.Value)
		default:
			seen[k.Value] = true
			d.decode(val, sub, v.Field(idx))
		}
	}
}

// yamlFields maps a struct's yaml tag names to field indexes. Fields without a tag, or
// tagged "-", are not configurable.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		m[name] = i
	}
	return m
}

func knownKeys(t reflect.Type) string {
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" && t.Field(i).IsExported() {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	default:
		return "something else"
	}
}
