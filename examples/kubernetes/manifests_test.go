// Package kubernetes_test checks the Kubernetes example: every manifest parses as YAML, and
// the fields README.md describes are there and agree with each other, with config.yaml, with
// the Dockerfile and with the node's stop budget. It is not a schema check: no offline schema
// checker (kubeconform, kubeval) is packaged for Debian.
package kubernetes_test

import (
	"bytes"
	"errors"
	"github.com/groupcached/groupcached/httpapi"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// object is one YAML document of a manifest: its header, and the rest for decoding by kind.
type object struct {
	file       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	node yaml.Node
}

type service struct {
	Spec struct {
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
			Protocol   string `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type statefulSet struct {
	Spec struct {
		ServiceName string `yaml:"serviceName"`
		Replicas    int    `yaml:"replicas"`
		Selector    struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
					RunAsUser    *int `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// nodeConfig is the part of config.yaml the manifests must agree with.
type nodeConfig struct {
	Node struct {
		HTTPAddr      string `yaml:"http_addr"`
		GossipAddr    string `yaml:"gossip_addr"`
		Preset        string `yaml:"preset"`
		ShutdownDelay string `yaml:"shutdown_delay"`
	} `yaml:"node"`
}

// loadManifests decodes every document of every manifests/*.yaml file.
func loadManifests(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("manifests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests under manifests/ (%v)", err)
	}
	var objects []object
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var o object
			if err := dec.Decode(&o.node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", file, i, err)
			}
			if err := o.node.Decode(&o); err != nil {
				t.Fatalf("%s: document %d: %v", file, i, err)
			}
			o.file = file
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: document %d lacks apiVersion, kind or metadata.name", file, i)
			}
			objects = append(objects, o)
		}
	}
	return objects
}

// only decodes the one object of kind whose name satisfies match into v.
func only(t *testing.T, objects []object, kind string, match func(object) bool, v any) object {
	t.Helper()
	var found []object
	for _, o := range objects {
		if o.Kind == kind && match(o) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one matching %s, found %d", kind, len(found))
	}
	if err := found[0].node.Decode(v); err != nil {
		t.Fatalf("%s %s: %v", kind, found[0].Metadata.Name, err)
	}
	return found[0]
}

func every(object) bool { return true }

// stopBudget is the bound the node puts on a graceful stop (readiness delay, leave, drain),
// as the binary configures it.
func stopBudget(t *testing.T) time.Duration {
	t.Helper()
	return httpapi.DefaultNodeConfig().StopTimeout
}

func port(t *testing.T, hostPort string) int {
	t.Helper()
	host, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Fatalf("%q: %v", hostPort, err)
	}
	if host != "0.0.0.0" {
		t.Errorf("%q listens on %q: in a pod it must listen on 0.0.0.0", hostPort, host)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func TestManifests(t *testing.T) {
	objects := loadManifests(t)
	var sts statefulSet
	only(t, objects, "StatefulSet", every, &sts)
	var headless service
	only(t, objects, "Service", func(o object) bool { return o.Metadata.Name == sts.Spec.ServiceName }, &headless)
	var client service
	only(t, objects, "Service", func(o object) bool { return o.Metadata.Name != sts.Spec.ServiceName }, &client)
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	only(t, objects, "ConfigMap", every, &cm)

	file, err := os.ReadFile("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg nodeConfig
	if err := yaml.Unmarshal(file, &cfg); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	httpPort, gossipPort := port(t, cfg.Node.HTTPAddr), port(t, cfg.Node.GossipAddr)

	pod := &sts.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	containerPorts := map[string]string{} // name -> "port/protocol"
	for _, p := range c.Ports {
		containerPorts[p.Name] = strconv.Itoa(p.ContainerPort) + "/" + p.Protocol
	}

	t.Run("config", func(t *testing.T) {
		if cm.Data["config.yaml"] != string(file) {
			t.Error("the ConfigMap's config.yaml differs from examples/kubernetes/config.yaml")
		}
		if cfg.Node.Preset != "lan" {
			t.Errorf("preset %q, want lan", cfg.Node.Preset)
		}
		if !slices.Contains(c.Args, "/etc/groupcached/config.yaml") {
			t.Errorf("args %q do not name /etc/groupcached/config.yaml", c.Args)
		}
		mounted := false
		for _, m := range c.VolumeMounts {
			for _, v := range pod.Volumes {
				if v.Name == m.Name && v.ConfigMap.Name != "" && m.MountPath == "/etc/groupcached" {
					mounted = true
				}
			}
		}
		if !mounted {
			t.Error("no ConfigMap volume is mounted at /etc/groupcached")
		}
	})

	t.Run("headless service", func(t *testing.T) {
		if headless.Spec.ClusterIP != "None" {
			t.Errorf("service %s: clusterIP %q, want None (headless)", sts.Spec.ServiceName, headless.Spec.ClusterIP)
		}
		if !headless.Spec.PublishNotReadyAddresses {
			t.Error("the headless service must publish pods before they are ready, for nodes that start together")
		}
		want := map[string]bool{strconv.Itoa(gossipPort) + "/TCP": false, strconv.Itoa(gossipPort) + "/UDP": false}
		for _, p := range headless.Spec.Ports {
			key := strconv.Itoa(p.Port) + "/" + p.Protocol
			if _, ok := want[key]; ok {
				want[key] = true
				if containerPorts[p.TargetPort] != key {
					t.Errorf("service port %s targets %q, which is %q in the container", key, p.TargetPort, containerPorts[p.TargetPort])
				}
			}
		}
		for key, ok := range want {
			if !ok {
				t.Errorf("the headless service lacks the gossip port %s", key)
			}
		}
		for _, s := range []service{headless, client} {
			for k, v := range s.Spec.Selector {
				if sts.Spec.Template.Metadata.Labels[k] != v {
					t.Errorf("service selector %s=%s does not match the pods' labels", k, v)
				}
			}
		}
		for k, v := range sts.Spec.Selector.MatchLabels {
			if sts.Spec.Template.Metadata.Labels[k] != v {
				t.Errorf("StatefulSet selector %s=%s does not match the pods' labels", k, v)
			}
		}
	})

	t.Run("env", func(t *testing.T) {
		defined := map[string]int{}
		for i, e := range c.Env {
			defined[e.Name] = i
		}
		get := func(name string) int {
			i, ok := defined[name]
			if !ok {
				t.Errorf("no %s", name)
			}
			return i
		}
		if i := get("GROUPCACHED_NAME"); i >= 0 && (c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != "metadata.name") {
			t.Error("GROUPCACHED_NAME must come from the downward API's metadata.name")
		}
		if i := get("GROUPCACHED_JOIN"); i >= 0 {
			join := c.Env[i].Value
			if !strings.HasPrefix(join, sts.Spec.ServiceName+".") || !strings.HasSuffix(join, ":"+strconv.Itoa(gossipPort)) {
				t.Errorf("GROUPCACHED_JOIN %q: want the headless service %s's DNS name and the gossip port %d", join, sts.Spec.ServiceName, gossipPort)
			}
			// Kubernetes expands $(VAR) only for variables defined earlier in the list.
			for _, m := range regexp.MustCompile(`\$\((\w+)\)`).FindAllStringSubmatch(join, -1) {
				if j, ok := defined[m[1]]; !ok || j > i {
					t.Errorf("GROUPCACHED_JOIN uses $(%s), which is not defined before it", m[1])
				}
			}
		}
		for _, name := range []string{"GROUPCACHED_SECRET_KEY", "GROUPCACHED_ADMIN_TOKEN"} {
			if i := get(name); i >= 0 {
				e := c.Env[i]
				if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name == "" || e.ValueFrom.SecretKeyRef.Key == "" {
					t.Errorf("%s must come from a Secret (secretKeyRef), never a literal value", name)
				}
			}
		}
	})

	t.Run("probes", func(t *testing.T) {
		for _, p := range []struct {
			name  string
			probe *probe
			path  string
		}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("no %s.httpGet", p.name)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("%s path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
			}
			if got, want := containerPorts[p.probe.HTTPGet.Port], strconv.Itoa(httpPort)+"/TCP"; got != want {
				t.Errorf("%s port %q is %q, want the HTTP port %s", p.name, p.probe.HTTPGet.Port, got, want)
			}
		}
	})

	t.Run("stop budget", func(t *testing.T) {
		budget := stopBudget(t)
		if pod.TerminationGracePeriodSeconds == nil {
			t.Fatal("no terminationGracePeriodSeconds (the default 30s says nothing of the node's budget)")
		}
		grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		var preStop time.Duration
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		if grace < preStop+budget {
			t.Errorf("terminationGracePeriodSeconds %v < preStop %v + the node's stop budget %v: Kubernetes would kill a node that is still draining", grace, preStop, budget)
		}
		delay, err := time.ParseDuration(cfg.Node.ShutdownDelay)
		if err != nil || delay >= budget {
			t.Errorf("shutdown_delay %q must be a duration within the stop budget %v", cfg.Node.ShutdownDelay, budget)
		}
		t.Logf("grace %v, preStop %v, stop budget %v, shutdown_delay %v", grace, preStop, budget, delay)
	})

	t.Run("the image", func(t *testing.T) {
		sc := pod.SecurityContext
		if !sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Fatal("the pod must run as a non-root user given by number")
		}
		dockerfile, err := os.ReadFile("../../Dockerfile")
		if err != nil {
			t.Fatal(err)
		}
		users := regexp.MustCompile(`(?m)^USER\s+(\d+)`).FindAllSubmatch(dockerfile, -1)
		if len(users) == 0 || string(users[len(users)-1][1]) != strconv.Itoa(*sc.RunAsUser) {
			t.Errorf("the Dockerfile's last USER is not the pod's runAsUser %d", *sc.RunAsUser)
		}
		for _, p := range c.Ports {
			expose := strconv.Itoa(p.ContainerPort) + "/" + strings.ToLower(p.Protocol)
			if !regexp.MustCompile(`(?m)^EXPOSE .*\b` + regexp.QuoteMeta(expose) + `\b`).Match(dockerfile) {
				t.Errorf("the Dockerfile does not EXPOSE %s", expose)
			}
		}
	})
}
