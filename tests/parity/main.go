// Command parity answers audit-policy questions with the real kube-apiserver code, so that the
// Python engine in components/policy can be compared with it (tests/parity/test_parity.py).
//
// stdin:  {"mode": "eval", "cases": [{"policy": "<yaml>", "requests": [Request...]}...]}
//
//	or {"mode": "bench", "policy": "<yaml>", "requests": [...], "seconds": 1.0}
//
// stdout: {"results": [{"ok": bool, "error": "...", "decisions": [Decision...]}...]}
//
//	or {"evaluations": N, "seconds": S}
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	"k8s.io/apiserver/pkg/audit/policy"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

type request struct {
	User            string   `json:"user"`
	Groups          []string `json:"groups"`
	Verb            string   `json:"verb"`
	APIGroup        string   `json:"apiGroup"`
	Resource        string   `json:"resource"`
	Subresource     string   `json:"subresource"`
	Namespace       string   `json:"namespace"`
	Name            string   `json:"name"`
	Path            string   `json:"path"`
	ResourceRequest bool     `json:"resourceRequest"`
}

type decision struct {
	Level             string   `json:"level"`
	Rule              *int     `json:"rule"`
	OmitStages        []string `json:"omitStages"`
	OmitManagedFields bool     `json:"omitManagedFields"`
}

type testCase struct {
	Policy   string    `json:"policy"`
	Requests []request `json:"requests"`
}

type result struct {
	OK        bool       `json:"ok"`
	Error     string     `json:"error,omitempty"`
	Decisions []decision `json:"decisions"`
}

type input struct {
	Mode     string     `json:"mode"`
	Cases    []testCase `json:"cases"`
	Policy   string     `json:"policy"`
	Requests []request  `json:"requests"`
	Seconds  float64    `json:"seconds"`
}

func attributes(r request) authorizer.Attributes {
	groups := r.Groups
	if groups == nil {
		groups = []string{}
	}
	return authorizer.AttributesRecord{
		User:            &user.DefaultInfo{Name: r.User, Groups: groups},
		Verb:            r.Verb,
		Namespace:       r.Namespace,
		APIGroup:        r.APIGroup,
		Resource:        r.Resource,
		Subresource:     r.Subresource,
		Name:            r.Name,
		ResourceRequest: r.ResourceRequest,
		Path:            r.Path,
	}
}

// markerPolicy copies p with each rule's level replaced by its index. The checker returns the
// matching rule's Level verbatim, which tells us which rule matched without re-implementing it.
func markerPolicy(p *auditinternal.Policy) *auditinternal.Policy {
	c := p.DeepCopy()
	for i := range c.Rules {
		c.Rules[i].Level = auditinternal.Level(fmt.Sprintf("#%d", i))
	}
	return c
}

func evalCase(tc testCase) result {
	p, err := policy.LoadPolicyFromBytes([]byte(tc.Policy))
	if err != nil {
		return result{OK: false, Error: err.Error(), Decisions: []decision{}}
	}
	marker := policy.NewPolicyRuleEvaluator(markerPolicy(p))
	real := policy.NewPolicyRuleEvaluator(p.DeepCopy())
	out := result{OK: true, Decisions: make([]decision, 0, len(tc.Requests))}
	for _, r := range tc.Requests {
		attrs := attributes(r)
		cfg := real.EvaluatePolicyRule(attrs)
		d := decision{Level: string(cfg.Level), OmitManagedFields: cfg.OmitManagedFields, OmitStages: []string{}}
		for _, s := range cfg.OmitStages {
			d.OmitStages = append(d.OmitStages, string(s))
		}
		sort.Strings(d.OmitStages)
		m := marker.EvaluatePolicyRule(attrs)
		var idx int
		if _, err := fmt.Sscanf(string(m.Level), "#%d", &idx); err == nil {
			d.Rule = &idx
		}
		out.Decisions = append(out.Decisions, d)
	}
	return out
}

func bench(in input) map[string]any {
	p, err := policy.LoadPolicyFromBytes([]byte(in.Policy))
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	ev := policy.NewPolicyRuleEvaluator(p)
	attrs := make([]authorizer.Attributes, len(in.Requests))
	for i, r := range in.Requests {
		attrs[i] = attributes(r)
	}
	limit := time.Duration(in.Seconds * float64(time.Second))
	start := time.Now()
	n := 0
	for time.Since(start) < limit {
		for _, a := range attrs {
			ev.EvaluatePolicyRule(a)
		}
		n += len(attrs)
	}
	return map[string]any{"evaluations": n, "seconds": time.Since(start).Seconds()}
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "parity: bad input:", err)
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	var err error
	if in.Mode == "bench" {
		err = enc.Encode(bench(in))
	} else {
		results := make([]result, 0, len(in.Cases))
		for _, tc := range in.Cases {
			results = append(results, evalCase(tc))
		}
		err = enc.Encode(map[string]any{"results": results})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parity:", err)
		os.Exit(2)
	}
}
