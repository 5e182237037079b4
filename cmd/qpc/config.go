package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/spf13/pflag"

	"github.com/quicprochat/qpc/internal/config"
)

// flagKeys maps `qpc node` (and `qpc config show`) flags to config keys.
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
	"fapp":       "fapp.role",
}

// otherEnv are QPC_* variables that are not config keys but are read by
// something qpc ships; they are not "unknown". (QPC_API_ADDR and
// QPC_API_TOKEN, read by the client commands, are config keys.)
var otherEnv = map[string]bool{
	"QPC_TEST_LOG": true, // transports/lora/link tests: debug logging
}

// addConfigFlags defines the flags that set config keys.
func addConfigFlags(f *pflag.FlagSet, file *string) {
	f.StringVarP(file, "config", "c", "", "TOML config file (see 'qpc genconf')")
	f.String("data-dir", "", "directory for identity and database (default ./qpc-data)")
	f.String("api", "", "admin API address host:port; empty string disables it (default 127.0.0.1:7780)")
	f.String("api-token", "", "bearer token for the admin API (required off loopback)")
	f.StringArray("listen", nil, "transport URI to listen on, repeatable (tcp://, quic://, ...)")
	f.StringArray("peer", nil, "peer URI to keep connected, repeatable")
	f.String("profile", "", "default or constrained: the defaults under the file, environment and flags")
	f.String("log-level", "", "debug, info, warn or error")
	f.String("log-format", "", "text or json")
	f.Bool("discovery", false, "find peers on the LAN by signed multicast beacons")
	f.StringSlice("fapp", nil, "FAPP roles, comma-separated: therapist, relay, patient (fapp.role)")
}

// Where a value came from.
const (
	srcDefault = "default" // config.Default()
	srcProfile = "profile" // the chosen profile's default, where it differs from config.Default()
	srcFile    = "file"
	srcEnv     = "env"
	srcFlag    = "flag"
)

type source struct {
	Kind string // one of the src* constants
	Name string // the profile, file, variable or flag
	Note string // e.g. why a file value does not apply
}

func (s source) String() string {
	out := s.Kind
	if s.Name != "" {
		out += " " + s.Name
	}
	if s.Note != "" {
		out += " (" + s.Note + ")"
	}
	return out
}

// resolved is the effective configuration with where each key came from.
type resolved struct {
	cfg         config.Config
	sources     map[string]source
	file        string
	fileProfile string   // the profile the file names, "" if it names none
	followed    []string // file keys left at fileProfile's default that follow cfg.Profile instead
}

// loadConfig builds the typed config with precedence
//
//	defaults of the chosen profile < TOML file < QPC_* environment < flags
//
// and validates it. file may be empty; flags may be nil. Errors wrap
// config.ErrInvalid when the input (not the machine) is at fault.
func loadConfig(file string, flags *pflag.FlagSet, environ []string) (config.Config, error) {
	r, err := resolveConfig(file, flags, environ)
	if err != nil {
		return config.Config{}, err
	}
	if err := r.cfg.Validate(); err != nil {
		return config.Config{}, err
	}
	return r.cfg, nil
}

// resolveConfig layers the sources without validating the result.
//
// The profile is resolved first (flag > QPC_PROFILE > the file's profile
// key > "default") and supplies every default, so a profile means the same
// with or without a file.
//
// A file that names a profile — `qpc genconf` always writes one, with every
// key — is read as changes to that profile: a value equal to that profile's
// default is not a change and follows the profile the node runs with. So
// `qpc genconf > qpc.toml; qpc node --config qpc.toml --profile constrained`
// runs with the constrained values, and so does every genconf file already
// deployed. We chose this over a genconf that comments every key out: that
// is as clear for a new file, but leaves each existing file pinning the
// default profile, and it breaks the usual way of editing genconf output
// (replace a value in place). The cost — a value deliberately set equal to
// the file's profile default follows another --profile — is visible in
// `qpc config show` and logged by `qpc node`. A file without a profile key
// is nothing but choices.
func resolveConfig(file string, flags *pflag.FlagSet, environ []string) (*resolved, error) {
	env := envMap(environ)
	if err := checkEnv(env); err != nil {
		return nil, err
	}
	r := &resolved{sources: map[string]source{}, file: file}

	var fileVals map[string]any
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%w: config file: %v", config.ErrInvalid, err)
		}
		if fileVals, err = config.ParseTOML(file, b); err != nil {
			return nil, err
		}
	}
	flagVals := map[string]flagValue{}
	if flags != nil {
		for flag, key := range flagKeys {
			f := flags.Lookup(flag)
			if f == nil || !f.Changed {
				continue
			}
			var raw any = f.Value.String()
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				raw = sv.GetSlice()
			}
			flagVals[key] = flagValue{flag: "--" + flag, raw: raw}
		}
	}

	// The profile first, with the same precedence as every other key.
	profile, psrc := config.ProfileDefault, source{Kind: srcDefault}
	if raw, ok := fileVals["profile"]; ok {
		s, err := config.Convert("profile", raw)
		if err != nil {
			return nil, withFrom(err, file)
		}
		r.fileProfile = s.(string)
		if r.fileProfile == "" {
			r.fileProfile = config.ProfileDefault
		}
		profile, psrc = r.fileProfile, source{Kind: srcFile, Name: file}
	}
	if v, ok := env[config.EnvName("profile")]; ok {
		profile, psrc = v, source{Kind: srcEnv, Name: config.EnvName("profile")}
	}
	if fv, ok := flagVals["profile"]; ok {
		profile, psrc = fv.raw.(string), source{Kind: srcFlag, Name: fv.flag}
	}
	if profile == "" {
		profile = config.ProfileDefault
	}
	base, err := config.ForProfile(profile)
	if err != nil {
		return nil, withFrom(err, psrc.Name)
	}
	var fileBase config.Config
	if r.fileProfile != "" {
		if fileBase, err = config.ForProfile(r.fileProfile); err != nil {
			return nil, withFrom(err, file)
		}
	}
	def := config.Default()
	r.cfg = base
	for _, k := range config.Keys() {
		if reflect.DeepEqual(base.Get(k.Name), def.Get(k.Name)) {
			r.sources[k.Name] = source{Kind: srcDefault}
		} else {
			r.sources[k.Name] = source{Kind: srcProfile, Name: profile}
		}
	}
	r.cfg.Profile = profile
	r.sources["profile"] = psrc

	var errs []error
	for _, k := range config.Keys() {
		if k.Name == "profile" {
			continue
		}
		if raw, ok := fileVals[k.Name]; ok {
			v, err := config.Convert(k.Name, raw)
			switch {
			case err != nil:
				errs = append(errs, withFrom(err, file))
			case r.fileProfile != "" && r.fileProfile != profile && reflect.DeepEqual(v, fileBase.Get(k.Name)):
				r.followed = append(r.followed, k.Name)
				s := r.sources[k.Name]
				s.Note = fmt.Sprintf("not a change in %s, written for profile %q", file, r.fileProfile)
				r.sources[k.Name] = s
			default:
				if err := r.cfg.Set(k.Name, v); err != nil {
					errs = append(errs, withFrom(err, file))
					continue
				}
				r.sources[k.Name] = source{Kind: srcFile, Name: file}
			}
		}
		if _, isFlag := flagVals[k.Name]; isFlag {
			// Flags beat the environment; an environment value under a
			// flag is not even parsed.
		} else if val, ok := env[k.Env()]; ok {
			if err := r.cfg.SetFrom(k.Name, val, k.Env()); err != nil {
				errs = append(errs, err)
			} else {
				r.sources[k.Name] = source{Kind: srcEnv, Name: k.Env()}
			}
		}
		if fv, ok := flagVals[k.Name]; ok {
			if err := r.cfg.SetFrom(k.Name, fv.raw, fv.flag); err != nil {
				errs = append(errs, err)
			} else {
				r.sources[k.Name] = source{Kind: srcFlag, Name: fv.flag}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

type flagValue struct {
	flag string
	raw  any // string or []string
}

// withFrom names where a bad value was given, for errors that do not yet.
func withFrom(err error, where string) error {
	var ve *config.ValueError
	if errors.As(err, &ve) && ve.From == "" {
		ve.From = where
		return err
	}
	var fe *config.FieldError
	if errors.As(err, &fe) && where != "" {
		return fmt.Errorf("%w (%s)", err, where)
	}
	return err
}

// checkEnv refuses QPC_* variables that name no key, as an unknown key in
// the file is refused: a typo must not pass silently.
func checkEnv(env map[string]string) error {
	known := map[string]bool{}
	var names []string
	for _, k := range config.Keys() {
		known[k.Env()] = true
		names = append(names, k.Env())
	}
	var errs []error
	for _, name := range sortedKeys(env) {
		if known[name] || otherEnv[name] {
			continue
		}
		if key, why, ok := config.Removed(name); ok {
			errs = append(errs, &config.RemovedKeyError{Key: key, Env: name, Why: why})
			continue
		}
		errs = append(errs, &config.UnknownKeyError{Key: name, Suggestion: config.Suggest(name, names)})
	}
	return errors.Join(errs...)
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
