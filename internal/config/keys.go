package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Key is one leaf of Config: "announce.interval", "transports.lora.mtu".
// The names are the TOML keys joined by dots; the environment variable is
// QPC_ followed by the name in upper case with dots as underscores.
type Key struct {
	Name  string
	index []int
	typ   reflect.Type
}

// Env is the key's environment variable, e.g. QPC_ANNOUNCE_INTERVAL.
func (k Key) Env() string { return EnvName(k.Name) }

// EnvName is the environment variable of a key name.
func EnvName(name string) string {
	return "QPC_" + strings.ToUpper(strings.ReplaceAll(name, ".", "_"))
}

var (
	durationType = reflect.TypeOf(Duration(0))
	keys         = collectKeys(reflect.TypeOf(Config{}), "", nil)
	keyByName    = func() map[string]Key {
		m := make(map[string]Key, len(keys))
		for _, k := range keys {
			m[k.Name] = k
		}
		return m
	}()
	sections = func() map[string]bool {
		m := map[string]bool{}
		for _, k := range keys {
			for i := strings.Index(k.Name, "."); i >= 0; i = next(k.Name, i) {
				m[k.Name[:i]] = true
			}
		}
		return m
	}()
)

func next(s string, i int) int {
	j := strings.Index(s[i+1:], ".")
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

func collectKeys(t reflect.Type, prefix string, index []int) []Key {
	var out []Key
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		if f.Type.Kind() == reflect.Struct {
			out = append(out, collectKeys(f.Type, prefix+name+".", idx)...)
			continue
		}
		out = append(out, Key{Name: prefix + name, index: idx, typ: f.Type})
	}
	return out
}

// Keys lists every key of Config in the order of the file.
func Keys() []Key { return append([]Key(nil), keys...) }

// LookupKey finds a key by its dotted name.
func LookupKey(name string) (Key, bool) {
	k, ok := keyByName[name]
	return k, ok
}

// Get returns the value of a key (a string, int, bool, float64, []string
// or Duration).
func (c *Config) Get(name string) any {
	k, ok := keyByName[name]
	if !ok {
		return nil
	}
	return reflect.ValueOf(c).Elem().FieldByIndex(k.index).Interface()
}

// Set converts raw (see SetFrom) and stores it.
func (c *Config) Set(name string, raw any) error { return c.SetFrom(name, raw, "") }

// SetFrom converts raw, a value from a TOML file (string, int64, float64,
// bool, []any) or from the environment or a flag (string, []string), to
// the key's type and stores it. A value of the wrong kind is a *ValueError
// that says, in our words, what the key takes; where names its source in
// messages.
func (c *Config) SetFrom(name string, raw any, where string) error {
	k, ok := keyByName[name]
	if !ok {
		return &UnknownKeyError{Key: name, Suggestion: Suggest(name, KeyNames())}
	}
	v, err := Convert(name, raw)
	if err != nil {
		var ve *ValueError
		if errors.As(err, &ve) {
			ve.From = where
		}
		return err
	}
	reflect.ValueOf(c).Elem().FieldByIndex(k.index).Set(reflect.ValueOf(v))
	return nil
}

// KeyNames lists every key name.
func KeyNames() []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name
	}
	return out
}

// ValueError is a value of the wrong kind for its key: a word where a
// number belongs, a duration without a unit.
type ValueError struct {
	Field string
	Value any    // as given
	Want  string // what the key takes, e.g. "a whole number"
	From  string // where the value was given: "qpc.toml", "QPC_ANNOUNCE_INTERVAL", "--api"; may be empty
}

func (e *ValueError) Error() string {
	s := fmt.Sprintf("config: %s: %s is not %s", e.Field, shownRaw(e.Value), e.Want)
	if e.From != "" {
		s += " (" + from(e.From) + ")"
	}
	return s
}

func from(where string) string {
	switch {
	case strings.HasPrefix(where, "QPC_"), strings.HasPrefix(where, "--"):
		return "from " + where
	}
	return "in " + where
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValueError) Unwrap() error { return ErrInvalid }

// UnknownKeyError is a key (or environment variable) Config does not have.
type UnknownKeyError struct {
	Key        string // as given: "announce.intervall" or "QPC_ANNOUNCE_INTERVALL"
	Suggestion string // the closest known name, or ""
	From       string // the file it was found in, if any
	Section    bool   // a [section] that Config does not have
}

func (e *UnknownKeyError) Error() string {
	s := "config: unknown key " + e.Key
	switch {
	case strings.HasPrefix(e.Key, "QPC_"):
		s = "config: unknown environment variable " + e.Key
	case e.Section:
		s = "config: unknown section [" + e.Key + "]"
	}
	if e.From != "" {
		s += " " + from(e.From)
	}
	if e.Suggestion != "" && e.Section {
		s += " (did you mean [" + e.Suggestion + "]?)"
	} else if e.Suggestion != "" {
		s += " (did you mean " + e.Suggestion + "?)"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *UnknownKeyError) Unwrap() error { return ErrInvalid }

// removedKeys are keys an older qpc had and this one does not, with why:
// a file or environment that still sets one gets a RemovedKeyError
// saying so, not a suggestion of another key.
var removedKeys = map[string]string{
	"crypto.mode": "nothing can honour it yet: 1:1 messages have one mode (sealed to the recipient, X25519 and ChaCha20-Poly1305), " +
		"and the group modes it chose between (MLS, MLS-Lite, the post-quantum hybrid) are not built; it returns with the groups work",
}

// removedSections are the sections of removed keys: [crypto] is read so
// that its keys get their RemovedKeyError.
var removedSections = func() map[string]bool {
	m := map[string]bool{}
	for k := range removedKeys {
		for i := strings.Index(k, "."); i >= 0; i = next(k, i) {
			if !sections[k[:i]] {
				m[k[:i]] = true
			}
		}
	}
	return m
}()

// Removed reports whether name, a dotted key or its QPC_* variable, is a
// key qpc no longer has, and returns the key and why it went.
func Removed(name string) (key, why string, ok bool) {
	for k, why := range removedKeys {
		if name == k || name == EnvName(k) {
			return k, why, true
		}
	}
	return "", "", false
}

// RemovedKeyError is a key that an older qpc had and this one does not.
type RemovedKeyError struct {
	Key  string // the dotted key, e.g. "crypto.mode"
	Env  string // the variable it was set by, if it was
	From string // the file it was found in, if it was
	Why  string
}

func (e *RemovedKeyError) Error() string {
	s := "config: " + e.Key
	switch {
	case e.Env != "":
		s = "config: " + e.Env + " (" + e.Key + ")"
	case e.From != "":
		s += " " + from(e.From)
	}
	hint := "delete it"
	if e.Env != "" {
		hint = "unset it"
	}
	return s + " is no longer a key: " + e.Why + "; " + hint
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *RemovedKeyError) Unwrap() error { return ErrInvalid }

func shownRaw(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = shownRaw(p)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprint(v)
}

// Convert turns raw into the type of key name without storing it.
func Convert(name string, raw any) (any, error) {
	k, ok := keyByName[name]
	if !ok {
		return nil, &UnknownKeyError{Key: name, Suggestion: Suggest(name, KeyNames())}
	}
	return convert(k, raw)
}

func convert(k Key, raw any) (any, error) {
	if raw != nil && reflect.TypeOf(raw) == k.typ && k.typ.Kind() != reflect.Slice {
		return raw, nil // already converted
	}
	bad := func(want string) error { return &ValueError{Field: k.Name, Value: raw, Want: want} }
	switch {
	case k.typ == durationType:
		return convertDuration(k.Name, raw)
	case k.typ.Kind() == reflect.String:
		if s, ok := raw.(string); ok {
			return s, nil
		}
		return nil, bad("text (write it in quotes)")
	case k.typ.Kind() == reflect.Bool:
		switch x := raw.(type) {
		case bool:
			return x, nil
		case string:
			if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
				return b, nil
			}
		}
		return nil, bad("true or false")
	case k.typ.Kind() == reflect.Int:
		switch x := raw.(type) {
		case int64:
			return int(x), nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return int(x), nil
			}
		case string:
			if n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(x, "_", ""))); err == nil {
				return n, nil
			}
		}
		return nil, bad("a whole number")
	case k.typ.Kind() == reflect.Float64:
		switch x := raw.(type) {
		case int64:
			return float64(x), nil
		case float64:
			return x, nil
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return f, nil
			}
		}
		return nil, bad("a number")
	case k.typ.Kind() == reflect.Slice && k.typ.Elem().Kind() == reflect.String:
		switch x := raw.(type) {
		case []string:
			return append([]string{}, x...), nil
		case string:
			return SplitList(x), nil
		case []any:
			out := make([]string, 0, len(x))
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, bad("a list of quoted strings")
				}
				out = append(out, s)
			}
			return out, nil
		}
		return nil, bad("a list of quoted strings")
	}
	return nil, fmt.Errorf("config: %s: unsupported type %s", k.Name, k.typ)
}

// convertDuration reads "90s", "10m", "1h30m". A bare number is refused
// rather than read as nanoseconds: `interval = 600` meant 600 ns before,
// which is never what anyone writes it for.
func convertDuration(field string, raw any) (Duration, error) {
	var s string
	switch x := raw.(type) {
	case string:
		s = strings.TrimSpace(x)
	case int64, float64:
		return 0, &ValueError{Field: field, Value: raw, Want: fmt.Sprintf("a duration with a unit, e.g. %vs or %s", raw, example(raw))}
	case Duration:
		return x, nil
	default:
		return 0, &ValueError{Field: field, Value: raw, Want: `a duration, e.g. "90s", "10m" or "1h30m"`}
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil && s != "0" {
		return 0, &ValueError{Field: field, Value: raw, Want: fmt.Sprintf("a duration with a unit, e.g. %ss or %s", s, example(s))}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &ValueError{Field: field, Value: raw, Want: `a duration, e.g. "90s", "10m" or "1h30m"`}
	}
	return Duration(d), nil
}

// example spells a number of seconds another way: 600 → 10m, 5400 → 1h30m.
func example(raw any) string {
	f, err := strconv.ParseFloat(fmt.Sprint(raw), 64)
	if err != nil || f < 60 || f != math.Trunc(f) || f > 1e9 {
		return "10m"
	}
	s := (time.Duration(f) * time.Second).String()
	switch {
	case strings.HasSuffix(s, "h0m0s"):
		s = strings.TrimSuffix(s, "0m0s")
	case strings.HasSuffix(s, "m0s"):
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

// SplitList reads a list from the environment: "a,b" → [a b].
func SplitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ParseTOML reads a config file into key → raw value, without applying
// it. Syntax errors give the line and column; keys Config does not have
// are errors naming the closest one; a value where a section belongs (or
// the other way round) is an error naming the key. name is the file name
// used in messages.
func ParseTOML(name string, b []byte) (map[string]any, error) {
	var tree map[string]any
	if err := toml.Unmarshal(b, &tree); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			msg := strings.TrimPrefix(de.Error(), "toml: ")
			return nil, fmt.Errorf("%w: %s: line %d, column %d: %s", ErrInvalid, name, row, col, msg)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
	}
	out := make(map[string]any)
	var errs []error
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			val, full := m[k], prefix+k
			sub, isTable := val.(map[string]any)
			_, isKey := keyByName[full]
			switch {
			case isKey && isTable:
				errs = append(errs, fmt.Errorf("%w: %s: %s is a value, not a section", ErrInvalid, name, full))
			case isKey:
				out[full] = val
			case sections[full] && isTable:
				walk(full+".", sub)
			case sections[full]:
				errs = append(errs, fmt.Errorf("%w: %s: %s is a section ([%s]), not a value", ErrInvalid, name, full, full))
			case removedSections[full] && isTable:
				walk(full+".", sub)
			case removedKeys[full] != "":
				errs = append(errs, &RemovedKeyError{Key: full, From: name, Why: removedKeys[full]})
			case isTable:
				var secs []string
				for s := range sections {
					secs = append(secs, s)
				}
				sort.Strings(secs)
				errs = append(errs, &UnknownKeyError{Key: full, Suggestion: Suggest(full, secs), From: name, Section: true})
			default:
				errs = append(errs, &UnknownKeyError{Key: full, Suggestion: Suggest(full, KeyNames()), From: name})
			}
		}
	}
	walk("", tree)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Suggest returns the candidate closest to name if it is close enough to
// be a typo (case-insensitive edit distance of at most a third of the
// name, and at most 3), else "".
func Suggest(name string, candidates []string) string {
	best, bestD := "", 4
	limit := len(name) / 3
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if d < bestD && d <= limit {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
