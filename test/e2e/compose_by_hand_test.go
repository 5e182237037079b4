package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeByHand brings up deploy/compose.yaml with docker network, docker
// volume and docker run, for a machine with Docker but neither `docker
// compose` nor docker-compose (or QPCTEST_COMPOSE_BY_HAND=1). It reads only
// what that file uses (image, command, volumes, networks, environment,
// healthcheck, ${VAR:-default}) and labels everything as compose does
// (com.docker.compose.project, .service, .network), so the test finds the
// containers and networks the same way; down removes them all.
func composeByHand(t *testing.T, project string, vars map[string]string) (down func()) {
	t.Helper()
	const file = "../../deploy/compose.yaml"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	interp := regexp.MustCompile(`\$\{([A-Z_]+)(?::-([^}]*))?\}`)
	b = interp.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := interp.FindSubmatch(m)
		if v, ok := vars[string(sub[1])]; ok {
			return []byte(v)
		}
		return sub[2]
	})
	var c struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Volumes     []string          `yaml:"volumes"`
			Networks    []string          `yaml:"networks"`
			Environment map[string]string `yaml:"environment"`
			Healthcheck struct {
				Interval    string `yaml:"interval"`
				Timeout     string `yaml:"timeout"`
				Retries     int    `yaml:"retries"`
				StartPeriod string `yaml:"start_period"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
		Networks map[string]any `yaml:"networks"`
		Volumes  map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	label := "com.docker.compose.project=" + project
	down = func() {
		for _, kind := range []string{"container", "network", "volume"} {
			var ids string
			if kind == "container" {
				out, _ := exec.Command("docker", "ps", "-a", "-q", "--filter", "label="+label).Output()
				ids = string(out)
			} else {
				out, _ := exec.Command("docker", kind, "ls", "-q", "--filter", "label="+label).Output()
				ids = string(out)
			}
			if f := strings.Fields(ids); len(f) > 0 {
				args := append([]string{kind, "rm"}, f...)
				if kind == "container" {
					args = append([]string{"rm", "-f", "-v"}, f...)
				}
				exec.Command("docker", args...).Run()
			}
		}
	}
	t.Cleanup(down)
	for n := range c.Networks {
		sh(t, "docker", "network", "create", "--label", label, "--label", "com.docker.compose.network="+n, project+"_"+n)
	}
	for v := range c.Volumes {
		sh(t, "docker", "volume", "create", "--label", label, project+"_"+v)
	}
	dir, _ := filepath.Abs(filepath.Dir(file))
	names := make([]string, 0, len(c.Services))
	for s := range c.Services {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, name := range names {
		s := c.Services[name]
		if len(s.Networks) == 0 {
			t.Fatalf("%s: service %s on no network", file, name)
		}
		args := []string{"run", "-d", "--name", project + "_" + name + "_1", "--label", label, "--label", "com.docker.compose.service=" + name,
			"--network", project + "_" + s.Networks[0], "--network-alias", name,
			"--health-interval", s.Healthcheck.Interval, "--health-timeout", s.Healthcheck.Timeout,
			"--health-retries", fmt.Sprint(s.Healthcheck.Retries), "--health-start-period", s.Healthcheck.StartPeriod}
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				src = filepath.Join(dir, src)
			} else {
				src = project + "_" + src
			}
			args = append(args, "-v", src+":"+dst)
		}
		for k, v := range s.Environment {
			args = append(args, "-e", k+"="+v)
		}
		args = append(append(args, s.Image), s.Command...)
		sh(t, append([]string{"docker"}, args...)...)
		for _, n := range s.Networks[1:] {
			sh(t, "docker", "network", "connect", "--alias", name, project+"_"+n, project+"_"+name+"_1")
		}
	}
	return down
}
