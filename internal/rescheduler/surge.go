package rescheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// AnnotationSurge is on a Deployment that has replicas in addition for
// nodes cut off from the control plane: a JSON object from each node's name
// to the replicas added for it. It is what a new leader reads to take them
// back.
const AnnotationSurge = "ning.io/partition-surge"

// surgeOf reads a Deployment's AnnotationSurge (empty when absent or not
// JSON: ning wrote it, and a broken one is taken as none).
func surgeOf(d *appsv1.Deployment) map[string]int32 {
	out := map[string]int32{}
	if v, ok := d.Annotations[AnnotationSurge]; ok {
		_ = json.Unmarshal([]byte(v), &out)
	}
	return out
}

// deploymentOf is the Deployment of a ReplicaSet, from the caches: the
// Deployment controller names its ReplicaSets <deployment>-<template hash>.
// The Deployment's selector must select the ReplicaSet's pods.
func (h *healer) deploymentOf(sg surge) (*appsv1.Deployment, bool) {
	if h.deployments == nil {
		return nil, false
	}
	name, ok := strings.CutSuffix(sg.replicaSet, "-"+sg.templateHash)
	if !ok || name == "" {
		return nil, false
	}
	d, err := h.deployments.Deployments(sg.namespace).Get(name)
	if err != nil {
		return nil, false
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(sg.podLabels)) {
		return nil, false
	}
	return d, true
}

// addSurge gives the Deployment of sg's ReplicaSet sg.pods replicas more,
// once per cut-off node (AnnotationSurge says which nodes it has them
// for), so that the scheduler places them elsewhere at once: the rest of
// the cluster can no longer route to the pods on the node.
func (h *healer) addSurge(ctx context.Context, node string, sg surge) {
	d, ok := h.deploymentOf(sg)
	if !ok {
		return
	}
	if _, done := surgeOf(d)[node]; done {
		return
	}
	key := d.Namespace + "/" + d.Name
	if h.cfg.DryRun {
		h.log.InfoContext(ctx, "dry run: would add replicas for a cut-off node", "deployment", key, "node", node, "replicas", sg.pods)
		return
	}
	changed, err := h.patchSurge(ctx, d.Namespace, d.Name, node, int32(sg.pods))
	if err != nil {
		h.log.ErrorContext(ctx, "adding replicas for a cut-off node", "deployment", key, "node", node, "err", err)
		return
	}
	if changed != 0 {
		h.m.PartitionSurge.WithLabelValues("added").Add(float64(changed))
		h.log.InfoContext(ctx, "replicas added for a cut-off node", "deployment", key, "node", node, "replicas", changed)
		h.recorder.Eventf(d, v1.EventTypeNormal, ReasonPartitionSurge, "node %s is cut off from the control plane: %d replica(s) added elsewhere for its pods, which ning keeps", node, changed)
	}
}

// releaseSurges takes back the replicas added for node from every
// Deployment that has them: the node is back (its pods serve again), or
// dead (its pods are deleted, and the added ones replace them).
func (h *healer) releaseSurges(ctx context.Context, node string) {
	if h.deployments == nil {
		return
	}
	ds, err := h.deployments.List(labels.Everything())
	if err != nil {
		h.log.ErrorContext(ctx, "listing Deployments", "err", err)
		return
	}
	for _, d := range ds {
		if _, ok := surgeOf(d)[node]; !ok {
			continue
		}
		key := d.Namespace + "/" + d.Name
		if h.cfg.DryRun {
			h.log.InfoContext(ctx, "dry run: would take back the replicas added for a node", "deployment", key, "node", node)
			continue
		}
		changed, err := h.patchSurge(ctx, d.Namespace, d.Name, node, 0)
		if err != nil {
			h.log.ErrorContext(ctx, "taking back the replicas added for a node", "deployment", key, "node", node, "err", err)
			continue
		}
		if changed != 0 {
			h.m.PartitionSurge.WithLabelValues("released").Add(float64(-changed))
			h.log.InfoContext(ctx, "replicas added for a cut-off node taken back", "deployment", key, "node", node, "replicas", -changed)
			h.recorder.Eventf(d, v1.EventTypeNormal, ReasonPartitionSurge, "node %s is no longer cut off: the %d replica(s) added for it taken back", node, -changed)
		}
	}
}

// patchSurge adds add replicas to a Deployment for node (add > 0), or
// takes back those added for it (add == 0), in one patch of spec.replicas
// and AnnotationSurge carrying the resourceVersion read, so a concurrent
// change (the user's, an autoscaler's) gets a conflict and a retry. It
// returns the change made to spec.replicas (0: none was due).
func (h *healer) patchSurge(ctx context.Context, namespace, name, node string, add int32) (int32, error) {
	var changed int32
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		changed = 0
		d, err := h.client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		sg := surgeOf(d)
		had, ok := sg[node]
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		switch {
		case add > 0 && !ok:
			sg[node] = add
			changed = add
		case add == 0 && ok:
			delete(sg, node)
			changed = -min(had, replicas)
		default:
			return nil
		}
		var ann any // nil removes the annotation
		if len(sg) > 0 {
			b, err := json.Marshal(sg)
			if err != nil {
				return fmt.Errorf("deployment %s/%s: the %s annotation: %w", namespace, name, AnnotationSurge, err)
			}
			ann = string(b)
		}
		patch, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": d.ResourceVersion, "annotations": map[string]any{AnnotationSurge: ann}},
			"spec":     map[string]any{"replicas": replicas + changed},
		})
		if err != nil {
			return fmt.Errorf("deployment %s/%s: the surge patch: %w", namespace, name, err)
		}
		_, err = h.client.AppsV1().Deployments(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("deployment %s/%s: %w", namespace, name, err)
	}
	return changed, nil
}
