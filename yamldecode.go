package main

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/loader"
)

// yamlDecoder fills Go values from a parsed YAML document, field by field, so that every
// mistake is reported with the file, the line and the key path, and so that a key the program
// does not know is an error rather than silently ignored (yaml.v3's KnownFields reports Go
// type names and stops at the first error; a user needs every mistake, in their own terms).
//
// A struct field's key is its `yaml:"name"` tag or, without one, its name in snake_case
// (CacheBytes: cache_bytes, NegativeTTL: negative_ttl); "-" hides it, and an untagged
// embedded struct lends its keys to the enclosing one. That rule lets the node use the
// packages' Config structs as they are (group.Config knows nothing of YAML), and it is the
// rule loader.Decoder promises to a custom loader type's settings.
//
// Supported field types: string, bool, integer and float kinds, time.Duration ("30s"),
// encoding.TextUnmarshaler (group.ByteSize: "64MiB"), []T, map[string]T and nested structs;
// an integer whose key ends in "_bytes" also takes a size ("64MiB"). Fields of other types
// (pointers, functions, interfaces) have no key. A null value leaves the field as it was, so
// defaults set before decoding survive. Each new element of a slice of structs starts from
// the element's defaults when its pointer implements defaulter. A type whose pointer
// implements yamlHook decodes itself (a group's `loader:` block).
type yamlDecoder struct {
	file  string
	lines map[string]int // key path ("groups[0].ttl") → line of its value
	errs  []error

	// loaders decodes the `loader:` blocks, each by its type's own factory.
	loaders *loader.Registry

	// nodes counts the nodes visited: aliases are followed, so a small document of nested
	// aliases could otherwise expand into billions of them.
	nodes int
}

// maxDecodeNodes bounds the nodes one document may expand to, aliases included. A real
// configuration has a few hundred.
const maxDecodeNodes = 100_000

// defaulter is implemented by config types whose zero value is not their default.
type defaulter interface{ setDefaults() }

// yamlHook is implemented by config types that decode themselves from their node.
type yamlHook interface {
	decodeYAML(d *yamlDecoder, n *yaml.Node, path string)
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlHookType        = reflect.TypeFor[yamlHook]()
)

// parseConfig decodes a YAML document over the defaults, with the loader types of loaders.
// Unknown keys, values of the wrong type, loader settings their type rejects and YAML syntax
// errors are reported with their line; the other values are not validated yet.
func parseConfig(name string, data []byte, loaders *loader.Registry) (Config, error) {
	cfg := defaultConfig()
	cfg.File = name
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, yamlSyntaxError(name, err)
	}
	d := &yamlDecoder{file: name, lines: map[string]int{}, loaders: loaders}
	if len(doc.Content) > 0 {
		d.decode(&doc, "", reflect.ValueOf(&cfg).Elem())
	}
	if err := errors.Join(d.errs...); err != nil {
		return Config{}, err
	}
	cfg.lines = d.lines
	return cfg, nil
}

// yamlLine matches the "line N: " yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

func yamlSyntaxError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ConfigError{File: name, Line: line, Msg: "invalid YAML: " + msg[len(m[0]):]}
	}
	return &ConfigError{File: name, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

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
	if v.CanAddr() && v.Addr().Type().Implements(yamlHookType) {
		v.Addr().Interface().(yamlHook).decodeYAML(d, n, path)
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
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		d.integer(n, path, v)
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

// integer stores a whole number, or a size such as 64MiB when the key ends in "_bytes".
func (d *yamlDecoder) integer(n *yaml.Node, path string, v reflect.Value) {
	if !strings.HasSuffix(path, "_bytes") {
		if !d.scalar(n, path, "an integer") {
			return
		}
		var err error
		if v.CanUint() {
			var u uint64
			if u, err = strconv.ParseUint(n.Value, 10, v.Type().Bits()); err == nil {
				v.SetUint(u)
			}
		} else {
			var i int64
			if i, err = strconv.ParseInt(n.Value, 10, v.Type().Bits()); err == nil {
				v.SetInt(i)
			}
		}
		if err != nil {
			d.errorf(n, path, "invalid integer %q", n.Value)
		}
		return
	}
	if !d.scalar(n, path, "a size such as 64MiB") {
		return
	}
	size, err := group.ParseByteSize(n.Value)
	switch {
	case err != nil:
		d.errorf(n, path, "%v", err)
	case v.CanUint() && !v.OverflowUint(uint64(size)):
		v.SetUint(uint64(size))
	case v.CanInt() && !v.OverflowInt(int64(size)):
		v.SetInt(int64(size))
	default:
		d.errorf(n, path, "size %q is out of range", n.Value)
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
		if out.MapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key())).IsValid() {
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
		f, ok := fields[k.Value]
		switch {
		case !ok:
			d.errorf(k, sub, "unknown key %q (known keys here: %s)", k.Value, knownKeys(v.Type()))
		case seen[k.Value]:
			d.errorf(k, sub, "duplicate key %q", k.Value)
		default:
			seen[k.Value] = true
			d.decode(val, sub, v.FieldByIndex(f.Index))
		}
	}
}

// yamlField is one configurable field of a struct: its key and where it is.
type yamlField struct {
	Key   string
	Name  string // the Go name
	Index []int  // for reflect.Value.FieldByIndex
}

// yamlFieldList lists t's configurable fields in declaration order, those of untagged
// embedded structs in place.
func yamlFieldList(t reflect.Type) []yamlField {
	var out []yamlField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
			continue
		case name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct:
			for _, inner := range yamlFieldList(f.Type) {
				inner.Index = append([]int{i}, inner.Index...)
				out = append(out, inner)
			}
			continue
		case name == "":
			name = snakeCase(f.Name)
		}
		if !configurable(f.Type) {
			continue
		}
		out = append(out, yamlField{Key: name, Name: f.Name, Index: []int{i}})
	}
	return out
}

// configurable reports whether the decoder can fill a field of type t.
func configurable(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(yamlHookType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.Slice:
		return configurable(t.Elem())
	case reflect.Map:
		return t.Key().Kind() == reflect.String && configurable(t.Elem())
	case reflect.Pointer, reflect.Interface, reflect.Func, reflect.Chan, reflect.UnsafePointer,
		reflect.Complex64, reflect.Complex128, reflect.Array, reflect.Uintptr:
		return false
	}
	return true
}

// yamlFields maps t's keys to its fields.
func yamlFields(t reflect.Type) map[string]yamlField {
	list := yamlFieldList(t)
	m := make(map[string]yamlField, len(list))
	for _, f := range list {
		m[f.Key] = f
	}
	return m
}

func knownKeys(t reflect.Type) string {
	var names []string
	for _, f := range yamlFieldList(t) {
		names = append(names, f.Key)
	}
	return strings.Join(names, ", ")
}

// fieldKey turns the Go field a *group.FieldError names in a struct of type t ("CacheBytes",
// "Seeds[2]") into its key ("cache_bytes", "join[2]"); false when t has no such key.
func fieldKey(t reflect.Type, field string) (string, bool) {
	name, index, _ := strings.Cut(field, "[")
	if index != "" {
		index = "[" + index
	}
	for _, f := range yamlFieldList(t) {
		if f.Name == name {
			return f.Key + index, true
		}
	}
	return "", false
}

// snakeCase spells a Go name as a config key: words in lower case joined by '_', an
// initialism being one word (HotCacheFraction: hot_cache_fraction, NegativeTTL:
// negative_ttl, DSNEnv: dsn_env).
func snakeCase(name string) string {
	r := []rune(name)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || (unicode.IsUpper(r[i-1]) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
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
