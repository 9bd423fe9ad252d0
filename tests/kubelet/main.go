// Command kubelet-decode reads static-pod manifest files the way the kubelet's file source does
// (pkg/kubelet/config/common.go tryDecodeSinglePod: YAML -> JSON with apimachinery's util/yaml,
// then the v1 Pod decoder) and prints, per file, the decoded Pod as JSON or the decoder's error.
//
// Used by tests/unit/manifest/test_kubelet_decode.py to prove that a rewrite keeps every scalar's
// type as the kubelet reads it. Test-only; never shipped to a master.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

type result struct {
	File  string          `json:"file"`
	Pod   json.RawMessage `json:"pod,omitempty"`
	Error string          `json:"error,omitempty"`
}

func decode(codecs serializer.CodecFactory, data []byte) ([]byte, error) {
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("yaml to json: %w", err)
	}
	obj, err := runtime.Decode(codecs.UniversalDeserializer(), js)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("invalid pod: got %T", obj)
	}
	return json.Marshal(pod)
}

func main() {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	codecs := serializer.NewCodecFactory(scheme)
	results := make([]result, 0, len(os.Args)-1)
	for _, file := range os.Args[1:] {
		r := result{File: file}
		data, err := os.ReadFile(file)
		if err == nil {
			r.Pod, err = decode(codecs, data)
		}
		if err != nil {
			r.Error = err.Error()
		}
		results = append(results, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
