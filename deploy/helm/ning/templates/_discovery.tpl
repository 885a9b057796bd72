{{/* A Go duration of whole s, m or h as seconds, e.g. 2m -> 120. */}}
{{- define "ning.seconds" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^[0-9]+[smh]$" $d) -}}
{{- fail (printf "duration %q: want whole seconds, minutes or hours such as 90s, 2m or 1h" $d) -}}
{{- else if hasSuffix "h" $d -}}{{ mul (trimSuffix "h" $d | atoi) 3600 }}
{{- else if hasSuffix "m" $d -}}{{ mul (trimSuffix "m" $d | atoi) 60 }}
{{- else -}}{{ trimSuffix "s" $d | atoi }}
{{- end -}}
{{- end -}}

{{/* Pod spec of ning discover (CronJob or Deployment); pass (dict "ctx" $ "name" n "jobSA" s). */}}
{{- define "ning.discoverPodSpec" -}}
{{- $ := .ctx -}}
{{- $v := $.Values.discovery -}}
serviceAccountName: {{ .name }}
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "ning.podSecurityContext" $ | nindent 2 }}
containers:
  - name: discover
    image: {{ include "ning.image" $ }}
    imagePullPolicy: {{ $.Values.image.pullPolicy }}
    args:
      - discover
      {{- if eq $v.mode "cronjob" }}
      - --once
      - --wait={{ $v.wait }}
      - --owner=cronjob/{{ .name }}
      {{- else }}
      - --interval={{ $v.interval }}
      - --listen=$(POD_IP):{{ $v.port }}
      - --owner=deployment/{{ .name }}
      {{- end }}
      - --source={{ $v.source }}
      {{- if eq $v.source "prometheus" }}
      - --prometheus-url={{ $v.prometheusURL }}
      {{- with $v.query }}
      - --query={{ . }}
      {{- end }}
      - --node-label={{ $v.nodeLabel }}
      {{- else }}
      - --otlp-listen=$(POD_IP):{{ $v.otlpPort }}
      {{- if not (and $v.otlpTLSSecret $v.otlpTokenSecret) }}
      {{- fail "discovery.source otlp needs discovery.otlpTLSSecret and discovery.otlpTokenSecret: the receiver takes pushes only over TLS with a bearer token" }}
      {{- end }}
      - --otlp-tls-cert=/etc/ning/otlp-tls/tls.crt
      - --otlp-tls-key=/etc/ning/otlp-tls/tls.key
      - --otlp-token-file=/etc/ning/otlp-token/token
      {{- with $v.otlpMetric }}
      - --otlp-metric={{ . }}
      {{- end }}
      {{- end }}
      - --gateway-selector={{ $v.gatewaySelector }}
      {{- with $v.gatewayNamespace }}
      - --gateway-namespace={{ . }}
      {{- end }}
      - --site-label={{ $.Values.siteLabel }}
      - --namespace={{ $.Release.Namespace }}
      - --image={{ include "ning.image" $ }}
      - --service-account={{ .jobSA }}
      - --job-template=/etc/ning/probe-job/template.yaml
      - --job-period={{ $v.jobPeriod }}
      - --job-ttl={{ $v.jobTTL }}
      - --keep-jobs={{ $v.keepJobs }}
      - --probe-arg=--methods={{ include "ning.proberMethods" $ }}
      - --probe-arg=--udp-port={{ $.Values.prober.udpPort }}
      - --probe-arg=--tcp-port={{ $.Values.prober.tcpPort }}
      - --probe-arg=--count={{ $.Values.prober.count }}
      - --probe-arg=--interval={{ $.Values.prober.interval }}
      - --probe-arg=--timeout={{ $.Values.prober.timeout }}
      {{- if eq (include "ning.mqttAuth" $) "token" }}
      - --probe-arg=--mqtt-username=kubernetes
      - --probe-arg=--mqtt-password-file=/etc/ning/mqtt/token
      {{- else }}
      - --probe-arg=--mqtt-username=$(MQTT_USERNAME)
      - --probe-arg=--mqtt-password-file=/etc/ning/mqtt/password
      {{- end }}
      {{- if $.Values.mqtt.caSecret }}
      - --probe-arg=--mqtt-ca=/etc/ning/mqtt-ca/ca.crt
      {{- end }}
      {{- include "ning.mqttArgs" $ | nindent 6 }}
      {{- with $v.extraArgs }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    env:
      {{- include "ning.podIPEnv" $ | nindent 6 }}
      {{- include "ning.mqttEnv" $ | nindent 6 }}
    {{- if eq $v.mode "continuous" }}
    ports:
      - name: http
        containerPort: {{ $v.port }}
      {{- if eq $v.source "otlp" }}
      - name: otlp-grpc
        containerPort: {{ $v.otlpPort }}
      {{- end }}
    livenessProbe:
      httpGet: {path: /healthz, port: http}
      initialDelaySeconds: 30
      periodSeconds: 30
      failureThreshold: 3
    readinessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 15
    {{- end }}
    securityContext:
      {{- include "ning.securityContext" $ | nindent 6 }}
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    volumeMounts:
      - name: probe-job
        mountPath: /etc/ning/probe-job
        readOnly: true
      {{- include "ning.mqttVolumeMounts" $ | nindent 6 }}
      {{- if eq $v.source "otlp" }}
      - name: otlp-tls
        mountPath: /etc/ning/otlp-tls
        readOnly: true
      - name: otlp-token
        mountPath: /etc/ning/otlp-token
        readOnly: true
      {{- end }}
volumes:
  - name: probe-job
    configMap:
      name: {{ .name }}-probe-job
  {{- include "ning.mqttVolumes" $ | nindent 2 }}
  {{- if eq $v.source "otlp" }}
  - name: otlp-tls
    secret:
      secretName: {{ $v.otlpTLSSecret }}
  - name: otlp-token
    secret:
      secretName: {{ $v.otlpTokenSecret }}
  {{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The probe Job's pod template (core/v1 PodTemplateSpec). */}}
{{- define "ning.probeJobTemplate" -}}
metadata:
  labels:
    app.kubernetes.io/name: ning
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/part-of: ning
spec:
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "ning.proberPodSecurityContext" . | nindent 4 }}
  containers:
    - name: probe
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      env:
        {{- include "ning.mqttEnv" . | nindent 8 }}
      securityContext:
        {{- include "ning.proberSecurityContext" . | nindent 8 }}
      resources:
        {{- toYaml .Values.discovery.probeJob.resources | nindent 8 }}
      volumeMounts:
        {{- include "ning.mqttVolumeMounts" . | nindent 8 }}
  volumes:
    {{- include "ning.mqttVolumes" . | nindent 4 }}
  {{- with .Values.discovery.probeJob.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
