#!/usr/bin/env bash
# make kind-up: a multi-node kind cluster with zone labels, Traefik (one
# gateway per node), Prometheus scraping it, and ning from this checkout.
# Needs docker, kind, kubectl and helm on PATH, and internet access for the
# charts and images. Not run in CI (no Docker there).
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${CLUSTER:-ning}
IMAGE=${IMAGE:-ning:dev}
NS=${NS:-ning-system}

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-up needs $tool on PATH" >&2; exit 1; }
done

echo "== cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER"
# The worker of zone "cloud" is the fallback site (CloudFallback plugin).
kubectl label node "$CLUSTER-worker5" kubernetes.io/role=cloud --overwrite

echo "== image $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

echo "== traefik and prometheus"
helm repo add traefik https://traefik.github.io/charts >/dev/null
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
helm repo update >/dev/null
# A DaemonSet, so that every site has a gateway; its pods carry
# prometheus.io/scrape annotations for the metrics entry point.
helm upgrade --install traefik traefik/traefik --namespace traefik --create-namespace \
  --set deployment.kind=DaemonSet --set service.type=NodePort --wait
# Prometheus' kubernetes-pods job scrapes annotated pods and copies the pod's
# node name into the "node" label that ning discover's query sums by.
helm upgrade --install prometheus prometheus-community/prometheus --namespace monitoring --create-namespace \
  --set alertmanager.enabled=false --set prometheus-pushgateway.enabled=false \
  --set kube-state-metrics.enabled=false --set prometheus-node-exporter.enabled=false --wait

echo "== ning in $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=restricted --overwrite
if ! kubectl -n "$NS" get secret ning-mqtt >/dev/null 2>&1; then
  kubectl -n "$NS" create secret generic ning-mqtt --from-literal=username=admin \
    --from-literal=password="$(head -c 24 /dev/urandom | base64)"
fi
helm upgrade --install ning deploy/helm/ning --namespace "$NS" \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --set discovery.prometheusURL=http://prometheus-server.monitoring.svc:80 \
  --set discovery.gatewayNamespace=traefik --wait

kubectl -n "$NS" get pods -o wide
cat <<MSG

ning is running. Pods opt in with spec.schedulerName: ning-scheduler, e.g.
  kubectl create deployment web --image=traefik/whoami --replicas=3 --dry-run=client -o yaml \\
    | sed 's/^    spec:/    spec:\n      schedulerName: ning-scheduler/' | kubectl apply -f -
Send traffic through one site's gateway to see discovery pick it:
  kubectl -n traefik get svc traefik
Tear down: kind delete cluster --name $CLUSTER
MSG
