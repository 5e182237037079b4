package main

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/quicprochat/qpc/internal/config"
)

// flagKeys maps `qpc node` flags to config keys.
var flagKeys = map[string]string{
	"data-dir":   "data_dir",
	"api":        "api.addr",
	"api-token":  "api.token",
	"listen":     "transports.listen",
	"peer":       "transports.peers",
	"profile":    "profile",
	"log-level":  "logging.level",
	"log-format": "logging.format",
	"discovery":  "transports.discovery",
}

// loadConfig builds the typed config with precedence defaults < TOML file
// < QPC_* environment < flags. It is the only place that reads viper.
// file may be empty; flags may be nil. Errors wrap config.ErrInvalid when
// the input (not the machine) is at fault.
func loadConfig(file string, flags *pflag.FlagSet, environ []string) (config.Config, error) {
	v := viper.New()
	v.SetConfigType("toml")
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return config.Config{}, fmt.Errorf("%w: config file: %v", config.ErrInvalid, err)
		}
		err = v.ReadConfig(f)
		f.Close()
		if err != nil {
			return config.Config{}, fmt.Errorf("%w: config file %s: %v", config.ErrInvalid, file, err)
		}
	}
	env := envMap(environ)
	for flag, key := range flagKeys {
		if flags == nil {
			break
		}
		if f := flags.Lookup(flag); f != nil {
			if err := v.BindPFlag(key, f); err != nil {
				return config.Config{}, err
			}
		}
	}
	// The profile picks the defaults, so resolve it first with the same
	// precedence as every other key.
	profile := v.GetString("profile")
	if p, ok := env["QPC_PROFILE"]; ok {
		profile = p
	}
	if flags != nil {
		if f := flags.Lookup("profile"); f != nil && f.Changed {
			profile = f.Value.String()
		}
	}
	defaults, err := config.ForProfile(profile)
	if err != nil {
		return config.Config{}, err
	}
	flat, err := flatten(defaults)
	if err != nil {
		return config.Config{}, err
	}
	for k, val := range flat {
		v.SetDefault(k, val)
	}
	// Environment: QPC_<SECTION>_<KEY>, e.g. QPC_API_ADDR. Viper's own
	// AutomaticEnv reads the process environment; we take it as a
	// parameter so tests can set it without touching os.Environ.
	for k := range flat {
		name := "QPC_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
		if val, ok := env[name]; ok {
			if flags != nil && flagChanged(flags, k) {
				continue // flags beat the environment
			}
			if _, isList := flat[k].([]any); isList {
				v.Set(k, splitList(val))
			} else {
				v.Set(k, val)
			}
		}
	}
	var c config.Config
	err = v.UnmarshalExact(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.TextUnmarshallerHookFunc(),
		stringToSlice,
	)))
	if err != nil {
		return config.Config{}, fmt.Errorf("%w: %v", config.ErrInvalid, err)
	}
	if err := c.Validate(); err != nil {
		return config.Config{}, err
	}
	return c, nil
}

func flagChanged(flags *pflag.FlagSet, key string) bool {
	for flag, k := range flagKeys {
		if k == key {
			if f := flags.Lookup(flag); f != nil && f.Changed {
				return true
			}
		}
	}
	return false
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "QPC_") {
			m[k] = v
		}
	}
	return m
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// stringToSlice lets a list key be given as "a,b" (environment).
func stringToSlice(from, to reflect.Type, data any) (any, error) {
	if from.Kind() == reflect.String && to.Kind() == reflect.Slice && to.Elem().Kind() == reflect.String {
		return splitList(data.(string)), nil
	}
	return data, nil
}

// flatten turns a Config into "section.key" → value, through its TOML form
// so the keys are exactly the file's.
func flatten(c config.Config) (map[string]any, error) {
	b, err := toml.Marshal(c)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	if err := toml.Unmarshal(b, &tree); err != nil {
		return nil, err
	}
	out := make(map[string]any)
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			if sub, ok := val.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out[prefix+k] = val
		}
	}
	walk("", tree)
	return out, nil
}
