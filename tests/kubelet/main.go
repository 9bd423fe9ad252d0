// Command kubelet-decode reads static-pod manifest files the way the kubelet's file source does and
// prints, per file, what it found. Test-only; never shipped to a master.
//
// For each file two readings are reported:
//   - "pod"/"error": the YAML -> JSON step (apimachinery util/yaml) and the plain v1 Pod decoder, no
//     defaults: which type every scalar has for the kubelet (tests/kubelet/test_kubelet_decode.py);
//   - "kubelet": the kubelet's whole static-pod path (pkg/kubelet/config common.go tryDecodeSinglePod,
//     built from k8s.io/kubernetes itself): the internal decoder with defaults, the name check, the
//     static-pod defaults, ValidatePodCreate and the API-object-reference check. "hash" is the hash the
//     kubelet puts into the pod UID (without the node and file parts, equal for every file here): two
//     files with the same hash are the same pod, so rewriting one into the other restarts nothing.
//
// With -dir DIR, the directory is listed as the kubelet lists a manifests dir (glob "[^.]*", sorted,
// stat following symlinks, subdirectories not read) and every file it would read is reported.
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	podutil "k8s.io/kubernetes/pkg/api/pod"
	api "k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/kubernetes/pkg/apis/core/helper"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	"k8s.io/kubernetes/pkg/apis/core/validation"
	"k8s.io/kubernetes/pkg/util/hash"
	utilio "k8s.io/utils/io"
)

// The kubelet's limit on one static-pod file (pkg/kubelet/config/common.go maxConfigLength).
const maxConfigLength = 10 * 1 << 20

const nodeName = "node-1"

type kubeletResult struct {
	// namespace/name as the kubelet's pod store keys it (the name before the node suffix).
	Key   string `json:"key,omitempty"`
	Hash  string `json:"hash,omitempty"`
	Error string `json:"error,omitempty"`
}

type result struct {
	File    string          `json:"file"`
	Pod     json.RawMessage `json:"pod,omitempty"`
	Error   string          `json:"error,omitempty"`
	Kubelet *kubeletResult  `json:"kubelet,omitempty"`
	Skipped string          `json:"skipped,omitempty"`
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

// staticPod follows the kubelet's tryDecodeSinglePod step by step, calling the same functions.
func staticPod(data []byte) kubeletResult {
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return kubeletResult{Error: fmt.Sprintf("yaml to json: %v", err)}
	}
	obj, err := runtime.Decode(legacyscheme.Codecs.UniversalDecoder(), js)
	if err != nil {
		return kubeletResult{Error: fmt.Sprintf("decode: %v", err)}
	}
	pod, ok := obj.(*api.Pod)
	if !ok {
		return kubeletResult{Error: fmt.Sprintf("invalid pod: got %T", obj)}
	}
	if pod.Name == "" {
		return kubeletResult{Error: "invalid pod: name is needed for the pod"}
	}
	namespace := pod.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	r := kubeletResult{Key: namespace + "/" + pod.Name}
	// The kubelet hashes the decoded pod before it adds anything (then the node and the file path).
	hasher := fnv.New128a()
	hash.DeepHashObject(hasher, pod)
	r.Hash = hex.EncodeToString(hasher.Sum(nil))
	// What the kubelet sets on every static pod before it validates one.
	pod.Name = pod.Name + "-" + nodeName
	pod.Namespace = namespace
	pod.Spec.NodeName = nodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations["kubernetes.io/config.hash"] = r.Hash
	helper.AddOrUpdateTolerationInPod(pod, &api.Toleration{Operator: "Exists", Effect: api.TaintEffectNoExecute})
	pod.Status.Phase = api.PodPending
	opts := podutil.GetValidationOptionsFromPodSpecAndMeta(&pod.Spec, nil, &pod.ObjectMeta, nil)
	if errs := validation.ValidatePodCreate(pod, opts); len(errs) > 0 {
		r.Error = fmt.Sprintf("invalid pod: %v", errs)
		return r
	}
	if _, resource, err := podutil.HasAPIObjectReference(pod); err != nil || resource != "" {
		r.Error = fmt.Sprintf("static pods may not reference %s (%v)", resource, err)
	}
	return r
}

func readFile(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return utilio.ReadAtMost(file, maxConfigLength)
}

func one(codecs serializer.CodecFactory, file string) result {
	r := result{File: file}
	data, err := readFile(file)
	if err != nil {
		if errors.Is(err, utilio.ErrLimitReached) {
			r.Skipped = "larger than the kubelet reads"
		}
		r.Error = err.Error()
		return r
	}
	if r.Pod, err = decode(codecs, data); err != nil {
		r.Error = err.Error()
	}
	k := staticPod(data)
	r.Kubelet = &k
	return r
}

// listDir lists a manifests dir as the kubelet's file source does (pkg/kubelet/config/file.go).
func listDir(codecs serializer.CodecFactory, dir string) ([]result, error) {
	entries, err := filepath.Glob(filepath.Join(dir, "[^.]*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(entries)
	results := make([]result, 0, len(entries))
	for _, path := range entries {
		info, err := os.Stat(path)
		switch {
		case err != nil:
			results = append(results, result{File: path, Skipped: err.Error()})
		case info.Mode().IsDir():
			results = append(results, result{File: path, Skipped: "directory"})
		case info.Mode().IsRegular():
			results = append(results, one(codecs, path))
		default:
			results = append(results, result{File: path, Skipped: "not a regular file"})
		}
	}
	return results, nil
}

func main() {
	dir := flag.String("dir", "", "list this manifests dir as the kubelet does")
	flag.Parse()
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	codecs := serializer.NewCodecFactory(scheme)
	var results []result
	if *dir != "" {
		var err error
		if results, err = listDir(codecs, *dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	} else {
		for _, file := range flag.Args() {
			results = append(results, one(codecs, file))
		}
	}
	if results == nil {
		results = []result{}
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
