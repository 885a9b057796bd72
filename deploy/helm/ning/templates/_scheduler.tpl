{{/* ning's scheduler profile (internal/scheduler/default-config.yaml) with the
election Lease in the release namespace and the plugin arguments from the values. */}}
{{- define "ning.schedulerConfig" -}}
{{- $p := .Values.scheduler.plugins -}}
{{- $name := printf "%s-scheduler" (include "ning.fullname" .) -}}
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: {{ .Values.scheduler.leaderElect }}
  resourceName: {{ $name }}
  resourceNamespace: {{ .Release.Namespace }}
clientConnection:
  kubeconfig: ""
profiles:
  - schedulerName: {{ .Values.scheduler.schedulerName }}
    plugins:
      multiPoint:
        enabled:
          - name: NetworkLatency
          - name: TrafficLatency
            weight: {{ $p.trafficLatencyWeight }}
          - name: NodeLoad
            weight: {{ $p.nodeLoadWeight }}
          - name: CloudFallback
            weight: {{ $p.cloudFallbackWeight }}
      # TrafficLatency binds first, writing why on the pod (the
      # ning.io/placement annotation, through the Binding); without traffic
      # data it skips and DefaultBinder binds.
      bind:
        enabled:
          - name: TrafficLatency
      preScore:
        disabled:
          - name: PodTopologySpread
      score:
        disabled:
          - name: PodTopologySpread
      {{- if not .Values.scheduler.preemption }}
      postFilter:
        {{- if .Values.rescheduler.failoverReserve.enabled }}
        # DefaultPreemption limited to failover placeholders.
        enabled:
          - name: PlaceholderPreemption
        {{- end }}
        disabled:
          - name: DefaultPreemption
      {{- end }}
    pluginConfig:
      - name: NetworkLatency
        args:
          siteLabel: {{ .Values.siteLabel }}
          unknownRTT: {{ $p.unknownRTT }}
          {{- with $p.delayLayersMs }}
          delayLayersMs: {{ toJson . }}
          {{- end }}
          delayLayerToleranceMs: {{ $p.delayLayerToleranceMs }}
      - name: TrafficLatency
        args:
          siteLabel: {{ .Values.siteLabel }}
          {{- if $p.perReplicaRPS }}
          perReplicaRPS: {{ $p.perReplicaRPS }}
          {{- end }}
      - name: NodeLoad
        args:
          cpuFilter: {{ $p.cpuFilter }}
          cpuPenaltyFrom: {{ $p.cpuPenaltyFrom }}
          penalty: {{ $p.penalty }}
          podCountWeight: {{ $p.podCountWeight }}
          missingLoad: {{ $p.missingLoad }}
      - name: CloudFallback
        args:
          cloudLabel: {{ $p.cloudLabel }}
          cloudValue: {{ $p.cloudValue }}
{{- end -}}
