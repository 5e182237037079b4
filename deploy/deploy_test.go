// Package deploy holds what operators run (Dockerfile, compose.yaml,
// k8s/, systemd/, qpc.toml) and this test, which checks them without a
// cluster or a container engine: each Kubernetes object parsed and the
// fields its kind requires, its probes, ports and volumes checked; every
// QPC_ variable any of them sets names a config key, and every config they
// give a node passes the node's validation.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"

	"github.com/quicprochat/qpc/internal/config"
)

type obj = map[string]any

// decodeAll reads every document of a YAML stream.
func decodeAll(t *testing.T, file string) []obj {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []obj
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

// get walks a path of keys and indices; nil when something is missing.
func get(o any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := o.(obj)
			if !ok {
				return nil
			}
			o = m[k]
		case int:
			l, ok := o.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			o = l[k]
		}
	}
	return o
}

func str(o any, path ...any) string {
	s, _ := get(o, path...).(string)
	return s
}

func list(o any, path ...any) []any {
	l, _ := get(o, path...).([]any)
	return l
}

// nodeConfig applies a TOML file's keys and then environment variables
// to the defaults as `qpc node` does (file < environment) and validates
// the result.
func nodeConfig(t *testing.T, where string, tomlText string, env map[string]string) config.Config {
	t.Helper()
	cfg := config.Default()
	var tree map[string]any
	if err := toml.Unmarshal([]byte(tomlText), &tree); err != nil {
		t.Fatalf("%s: TOML: %v", where, err)
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			if err := cfg.SetFrom(prefix+k, v, where); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		}
	}
	walk("", tree)
	byEnv := map[string]string{}
	for _, k := range config.Keys() {
		byEnv[k.Env()] = k.Name
	}
	for name, v := range env {
		key, ok := byEnv[name]
		if !ok {
			t.Errorf("%s: %s is no config key's variable (a node refuses it)", where, name)
			continue
		}
		if err := cfg.SetFrom(key, v, where+" "+name); err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("%s: the node would refuse this config: %v", where, err)
	}
	return cfg
}

// dockerfile reads the instructions of deploy/Dockerfile.
func dockerfile(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var cont string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = cont + line
		if strings.HasSuffix(line, "\\") {
			cont = strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cont = ""
		ins, rest, _ := strings.Cut(line, " ")
		out[ins] += rest
	}
	return out
}

func imageEnv(t *testing.T) map[string]string {
	env := map[string]string{}
	for _, kv := range strings.Fields(dockerfile(t)["ENV"]) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func TestDockerfile(t *testing.T) {
	d := dockerfile(t)
	if d["FROM"] != "scratch" {
		t.Errorf("FROM %q: the image must not need a base image (no registry)", d["FROM"])
	}
	if u := d["USER"]; u == "" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
		t.Errorf("USER %q: want a non-root numeric user", u)
	}
	if !strings.Contains(d["VOLUME"], "/data") || imageEnv(t)["QPC_DATA_DIR"] != "/data" {
		t.Errorf("the data dir is not the volume: VOLUME %s, ENV %s", d["VOLUME"], d["ENV"])
	}
	if !strings.Contains(d["HEALTHCHECK"], `"/qpc", "health"`) {
		t.Errorf("HEALTHCHECK %q does not run qpc health", d["HEALTHCHECK"])
	}
	cfg := nodeConfig(t, "Dockerfile ENV", "", imageEnv(t))
	if host, _, _ := strings.Cut(cfg.API.Addr, ":"); !config.IsLoopbackHost(host) {
		t.Errorf("the image's API is on %s, not loopback", cfg.API.Addr)
	}
}

func TestCompose(t *testing.T) {
	docs := decodeAll(t, "compose.yaml")
	if len(docs) != 1 {
		t.Fatalf("compose.yaml: %d documents", len(docs))
	}
	c := docs[0]
	services, _ := get(c, "services").(obj)
	relays, edges := 0, 0
	nets := map[string]bool{}
	for name, s := range services {
		switch {
		case strings.HasPrefix(name, "relay"):
			relays++
		case strings.HasPrefix(name, "edge"):
			edges++
		}
		for _, n := range list(s, "networks") {
			nets[n.(string)] = true
			if get(c, "networks", n.(string)) == nil {
				t.Errorf("%s: network %s is not declared", name, n)
			}
		}
		var toml string
		for _, v := range list(s, "volumes") {
			src, dst, _ := strings.Cut(v.(string), ":")
			if strings.HasPrefix(dst, "/etc/qpc/qpc.toml") {
				b, err := os.ReadFile(src)
				if err != nil {
					t.Fatalf("%s mounts %s: %v", name, src, err)
				}
				toml = string(b)
			} else if dst == "/data" && get(c, "volumes", src) == nil {
				t.Errorf("%s: volume %s is not declared", name, src)
			}
		}
		if toml == "" {
			t.Errorf("%s mounts no qpc.toml", name)
		}
		if !slices.Contains(list(s, "command"), any("/etc/qpc/qpc.toml")) {
			t.Errorf("%s: command %v does not read the mounted file", name, list(s, "command"))
		}
		env := imageEnv(t)
		if e, ok := get(s, "environment").(obj); ok {
			for k, v := range e {
				vs, _ := v.(string)
				if i := strings.Index(vs, "${"); i >= 0 { // ${VAR:-default}
					_, def, _ := strings.Cut(vs[i:], ":-")
					vs = vs[:i] + strings.TrimSuffix(def, "}")
				}
				env[k] = vs
			}
		}
		nodeConfig(t, "compose.yaml "+name, toml, env)
	}
	if relays < 3 || edges < 2 || len(nets) < 2 {
		t.Errorf("compose.yaml: %d relays, %d edge nodes on %d networks; want at least 3, 2 and 2", relays, edges, len(nets))
	}
}

// TestKubernetesManifests is acceptance 3 of issue 16: every object of
// k8s/*.yaml parses and has what its kind requires; the StatefulSet's
// probes, ports and volumes hold together with the Services and the
// ConfigMap, and the config it gives a relay passes the node's validation.
func TestKubernetesManifests(t *testing.T) {
	files, _ := filepath.Glob("k8s/*.yaml")
	if len(files) == 0 {
		t.Fatal("no k8s/*.yaml")
	}
	byKind := map[string][]obj{}
	for _, f := range files {
		for _, o := range decodeAll(t, f) {
			kind, name := str(o, "kind"), str(o, "metadata", "name")
			if str(o, "apiVersion") == "" || kind == "" || name == "" {
				t.Errorf("%s: an object without apiVersion, kind or metadata.name: %v", f, o)
				continue
			}
			want := map[string]string{"StatefulSet": "apps/v1", "Service": "v1", "ConfigMap": "v1"}[kind]
			if want == "" {
				t.Errorf("%s: unexpected kind %s", f, kind)
			} else if str(o, "apiVersion") != want {
				t.Errorf("%s %s: apiVersion %s, want %s", kind, name, str(o, "apiVersion"), want)
			}
			byKind[kind] = append(byKind[kind], o)
		}
	}
	if len(byKind["StatefulSet"]) != 1 || len(byKind["ConfigMap"]) != 1 {
		t.Fatalf("want one StatefulSet and one ConfigMap, have %d and %d", len(byKind["StatefulSet"]), len(byKind["ConfigMap"]))
	}
	sts, cm := byKind["StatefulSet"][0], byKind["ConfigMap"][0]
	name := str(sts, "metadata", "name")
	replicas, _ := get(sts, "spec", "replicas").(int)
	if replicas < 1 {
		t.Fatalf("StatefulSet %s: replicas %v", name, get(sts, "spec", "replicas"))
	}

	// Selector and template labels.
	match, _ := get(sts, "spec", "selector", "matchLabels").(obj)
	labels, _ := get(sts, "spec", "template", "metadata", "labels").(obj)
	if len(match) == 0 {
		t.Error("StatefulSet: no spec.selector.matchLabels")
	}
	for k, v := range match {
		if labels[k] != v {
			t.Errorf("StatefulSet: selector %s=%v not in the template's labels %v", k, v, labels)
		}
	}

	// Containers: image, ports, probes, mounts.
	pod := get(sts, "spec", "template", "spec")
	containers := list(pod, "containers")
	if len(containers) != 1 {
		t.Fatalf("StatefulSet: %d containers", len(containers))
	}
	c := containers[0]
	if str(c, "name") == "" || str(c, "image") == "" {
		t.Error("container without name or image")
	}
	ports := map[string]obj{} // by name
	for _, p := range list(c, "ports") {
		po := p.(obj)
		if _, ok := po["containerPort"].(int); !ok || str(po, "name") == "" {
			t.Errorf("container port %v: want a name and a numeric containerPort", po)
		}
		ports[str(po, "name")] = po
	}
	for n, proto := range map[string]string{"tcp": "TCP", "quic": "UDP", "api": "TCP"} {
		if ports[n] == nil || str(ports[n], "protocol") != proto {
			t.Errorf("container port %s: %v, want protocol %s", n, ports[n], proto)
		}
	}
	probePort := func(what string, p any) {
		if hg := get(p, "httpGet"); hg != nil {
			port := get(hg, "port")
			if s, ok := port.(string); ok && ports[s] == nil {
				t.Errorf("%s probe: port %s is not a container port", what, s)
			}
		}
	}
	for _, pr := range []struct{ key, path string }{{"livenessProbe", "/healthz"}, {"startupProbe", "/healthz"}} {
		p := get(c, pr.key)
		if str(p, "httpGet", "path") != pr.path {
			t.Errorf("%s: want httpGet %s, have %v", pr.key, pr.path, p)
		}
		probePort(pr.key, p)
	}
	ready := get(c, "readinessProbe")
	if cmd := list(ready, "exec", "command"); str(ready, "httpGet", "path") != "/readyz" &&
		!(len(cmd) >= 3 && cmd[0] == "/qpc" && cmd[1] == "health" && cmd[2] == "--ready") {
		t.Errorf("readinessProbe: want /readyz (httpGet, or qpc health --ready), have %v", ready)
	}
	// The kubelet stops the pod with SIGTERM, and SIGKILL after the grace
	// period: the node's shutdown must fit.
	grace, _ := get(pod, "terminationGracePeriodSeconds").(int)

	// Volumes: every mount is a pod volume or a claim template.
	vols := map[string]any{}
	for _, v := range list(pod, "volumes") {
		vols[str(v, "name")] = v
	}
	for _, v := range list(sts, "spec", "volumeClaimTemplates") {
		if len(list(v, "spec", "accessModes")) == 0 || str(v, "spec", "resources", "requests", "storage") == "" {
			t.Errorf("volumeClaimTemplate %s: no accessModes or storage request", str(v, "metadata", "name"))
		}
		vols[str(v, "metadata", "name")] = v
	}
	mounts := map[string]string{}
	for _, m := range list(c, "volumeMounts") {
		if vols[str(m, "name")] == nil {
			t.Errorf("volumeMount %s: no such volume", str(m, "name"))
		}
		mounts[str(m, "mountPath")] = str(m, "name")
	}
	cmName := str(vols[mounts["/etc/qpc"]], "configMap", "name")
	if cmName != str(cm, "metadata", "name") {
		t.Errorf("/etc/qpc is %q, not the ConfigMap %s", cmName, str(cm, "metadata", "name"))
	}
	if get(vols[mounts["/data"]], "spec") == nil {
		t.Error("/data is not a volumeClaimTemplate: the identity would not survive a reschedule")
	}

	// The config a relay runs with: the ConfigMap's qpc.toml (the file
	// the args name) under the container's environment.
	args := list(c, "args")
	if !slices.Contains(args, any("/etc/qpc/qpc.toml")) {
		t.Errorf("args %v do not read /etc/qpc/qpc.toml", args)
	}
	toml := str(cm, "data", "qpc.toml")
	if toml == "" {
		t.Fatal("ConfigMap has no qpc.toml")
	}
	env := imageEnv(t)
	var secretToken bool
	for _, e := range list(c, "env") {
		v := str(e, "value")
		if sk := get(e, "valueFrom", "secretKeyRef"); sk != nil {
			if str(sk, "name") == "" || str(sk, "key") == "" {
				t.Errorf("env %s: secretKeyRef without name or key", str(e, "name"))
			}
			v = "a-token-from-the-secret"
			secretToken = secretToken || str(e, "name") == "QPC_API_TOKEN"
		}
		env[str(e, "name")] = v
	}
	cfg := nodeConfig(t, "k8s StatefulSet", toml, env)
	if !secretToken {
		t.Error("QPC_API_TOKEN does not come from a Secret")
	}
	if cfg.DataDir != "/data" {
		t.Errorf("data_dir %s is not the claim's mount /data", cfg.DataDir)
	}
	if _, port, _ := strings.Cut(cfg.API.Addr, ":"); strconv.Itoa(get(ports["api"], "containerPort").(int)) != port {
		t.Errorf("api.addr %s is not on the api port %v", cfg.API.Addr, get(ports["api"], "containerPort"))
	}
	if grace == 0 || float64(grace) <= cfg.Shutdown.Timeout.D().Seconds() {
		t.Errorf("terminationGracePeriodSeconds %d does not exceed shutdown.timeout %s", grace, cfg.Shutdown.Timeout.D())
	}

	// Prometheus scrape annotations on the pods, on the API port.
	ann, _ := get(sts, "spec", "template", "metadata", "annotations").(obj)
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" ||
		ann["prometheus.io/port"] != strconv.Itoa(get(ports["api"], "containerPort").(int)) {
		t.Errorf("scrape annotations %v", ann)
	}
	// Non-root, as the image.
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext: runAsNonRoot is not true")
	}
	if u, _, _ := strings.Cut(dockerfile(t)["USER"], ":"); strconv.Itoa(get(pod, "securityContext", "runAsUser").(int)) != u {
		t.Errorf("runAsUser %v is not the image's USER %s", get(pod, "securityContext", "runAsUser"), u)
	}

	// Services: the governing one is headless; one per relay selects its
	// pod by name; every service port names a container port.
	perPod := map[string]bool{}
	for _, s := range byKind["Service"] {
		sn := str(s, "metadata", "name")
		sel, _ := get(s, "spec", "selector").(obj)
		if len(sel) == 0 {
			t.Errorf("Service %s: no selector", sn)
		}
		if len(list(s, "spec", "ports")) == 0 {
			t.Errorf("Service %s: no ports", sn)
		}
		for _, p := range list(s, "spec", "ports") {
			if _, ok := get(p, "port").(int); !ok {
				t.Errorf("Service %s: port %v without a number", sn, p)
			}
			if tp, ok := get(p, "targetPort").(string); ok && ports[tp] == nil {
				t.Errorf("Service %s: targetPort %s is not a container port", sn, tp)
			} else if ok && str(p, "protocol") != str(ports[tp], "protocol") {
				t.Errorf("Service %s: %s over %s, the container's over %s", sn, tp, str(p, "protocol"), str(ports[tp], "protocol"))
			}
		}
		if sn == str(sts, "spec", "serviceName") {
			if str(s, "spec", "clusterIP") != "None" {
				t.Errorf("Service %s governs the StatefulSet but is not headless", sn)
			}
			for k, v := range sel {
				if labels[k] != v {
					t.Errorf("Service %s selects %s=%v, not on the pods", sn, k, v)
				}
			}
		} else if p, ok := sel["statefulset.kubernetes.io/pod-name"].(string); ok {
			perPod[p] = true
		}
	}
	peers := strings.Join(cfg.Transports.Peers, " ")
	for i := range replicas {
		pod := name + "-" + strconv.Itoa(i)
		if !perPod[pod] {
			t.Errorf("no Service for relay %s", pod)
		}
		if !strings.Contains(peers, "://"+pod+":") {
			t.Errorf("the relays do not peer with %s: %s", pod, peers)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("systemd/qpc.service")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			set[k] = v
		}
	}
	for k, want := range map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"DynamicUser": "yes", "StateDirectory": "qpc", "CapabilityBoundingSet": "", "KillSignal": "SIGTERM",
		"RestrictSUIDSGID": "yes", "MemoryDenyWriteExecute": "yes",
	} {
		if v, ok := set[k]; !ok || v != want {
			t.Errorf("%s=%q, want %q", k, v, want)
		}
	}
	if !strings.Contains(set["ExecStart"], "--data-dir /var/lib/qpc") {
		t.Errorf("ExecStart %q does not keep the data in the StateDirectory", set["ExecStart"])
	}
}
