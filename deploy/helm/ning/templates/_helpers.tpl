{{/* Name prefix of every object. */}}
{{- define "ning.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; pass (dict "ctx" $ "component" "x"). */}}
{{- define "ning.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: ning
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{ include "ning.selectorLabels" . }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ning.selectorLabels" -}}
app.kubernetes.io/name: ning
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ning.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The broker every client talks to. */}}
{{- define "ning.mqttURL" -}}
{{- if .Values.mqtt.url -}}
{{ .Values.mqtt.url }}
{{- else if .Values.broker.enabled -}}
{{ ternary "tls" "mqtt" (ne .Values.broker.tlsSecret "") }}://{{ include "ning.fullname" . }}-broker.{{ .Release.Namespace }}.svc:{{ .Values.broker.port }}
{{- else -}}
{{ fail "mqtt.url is empty and broker.enabled is false: give an external broker URL or turn the embedded broker on" }}
{{- end -}}
{{- end -}}

{{/* The MQTT authentication mode: token (each pod's own ServiceAccount token) or secret. */}}
{{- define "ning.mqttAuth" -}}
{{- if not (has .Values.mqtt.auth (list "token" "secret")) -}}
{{ fail (printf "mqtt.auth %q: want token or secret" .Values.mqtt.auth) }}
{{- else if and (eq .Values.mqtt.auth "token") .Values.mqtt.url -}}
{{ fail "mqtt.auth=token needs the embedded broker (it reviews the tokens); an external broker needs mqtt.auth=secret" }}
{{- else -}}
{{ .Values.mqtt.auth }}
{{- end -}}
{{- end -}}

{{/* MQTT client arguments, as a YAML list body. */}}
{{- define "ning.mqttArgs" -}}
- --broker={{ include "ning.mqttURL" . }}
{{- if eq (include "ning.mqttAuth" .) "token" }}
- --mqtt-username=kubernetes
- --mqtt-password-file=/etc/ning/mqtt/token
{{- else }}
- --mqtt-username=$(MQTT_USERNAME)
- --mqtt-password-file=/etc/ning/mqtt/password
{{- end }}
{{- if .Values.mqtt.caSecret }}
- --mqtt-ca=/etc/ning/mqtt-ca/ca.crt
{{- end }}
{{- end -}}

{{- define "ning.mqttEnv" -}}
{{- if eq (include "ning.mqttAuth" .) "secret" -}}
- name: MQTT_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mqtt.credentialsSecret }}
      key: {{ .Values.mqtt.usernameKey }}
{{- end -}}
{{- end -}}

{{- define "ning.mqttVolumeMounts" -}}
- name: mqtt-credentials
  mountPath: /etc/ning/mqtt
  readOnly: true
{{- if .Values.mqtt.caSecret }}
- name: mqtt-ca
  mountPath: /etc/ning/mqtt-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "ning.mqttVolumes" -}}
{{- if eq (include "ning.mqttAuth" .) "token" }}
# The pod's own ServiceAccount token for the broker's audience: the broker
# reviews it (TokenReview) and maps the account to an identity (a prober:
# probe@<its node's site>). It is no credential for the Kubernetes API.
- name: mqtt-credentials
  projected:
    defaultMode: 0440
    sources:
      - serviceAccountToken:
          audience: {{ .Values.mqtt.tokenAudience }}
          expirationSeconds: 3600
          path: token
{{- else }}
- name: mqtt-credentials
  secret:
    secretName: {{ .Values.mqtt.credentialsSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.mqtt.passwordKey }}
        path: password
{{- end }}
{{- if .Values.mqtt.caSecret }}
- name: mqtt-ca
  secret:
    secretName: {{ .Values.mqtt.caSecret }}
    defaultMode: 0444
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}

{{/* Static latency file, for the components that read the store. */}}
{{- define "ning.latencyArgs" -}}
{{- if .Values.latency.staticFile -}}
- --latency-file=/etc/ning/latency/topology.yaml
{{- end }}
{{- end -}}

{{- define "ning.latencyVolumeMounts" -}}
{{- if .Values.latency.staticFile -}}
- name: latency
  mountPath: /etc/ning/latency
  readOnly: true
{{- end }}
{{- end -}}

{{- define "ning.latencyVolumes" -}}
{{- if .Values.latency.staticFile -}}
- name: latency
  configMap:
    name: {{ include "ning.fullname" . }}-latency
{{- end }}
{{- end -}}

{{- define "ning.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{/* Container security context: nothing beyond what a process needs. */}}
{{- define "ning.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}


{{/* Scrape annotations for a pod serving plain-HTTP /metrics on port. */}}
{{- define "ning.scrapeAnnotations" -}}
{{- if .ctx.Values.metrics.scrapeAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* Prober flags shared by the DaemonSet and the probe Job. */}}
{{- define "ning.proberMethods" -}}
{{- if .Values.prober.methods -}}
{{ .Values.prober.methods }}
{{- else if eq .Values.prober.icmp "raw" -}}
icmp-raw,tcp
{{- else if eq .Values.prober.icmp "unprivileged" -}}
icmp-udp,tcp
{{- else -}}
{{ fail (printf "prober.icmp %q: want unprivileged or raw" .Values.prober.icmp) }}
{{- end -}}
{{- end -}}

{{/* Pod security context of a prober pod (DaemonSet or Job). */}}
{{- define "ning.proberPodSecurityContext" -}}
{{- if eq .Values.prober.icmp "raw" -}}
runAsNonRoot: false
runAsUser: 0
runAsGroup: 0
seccompProfile:
  type: RuntimeDefault
{{- else -}}
{{ toYaml .Values.podSecurityContext }}
sysctls:
  - name: net.ipv4.ping_group_range
    value: "{{ .Values.podSecurityContext.runAsGroup }} {{ .Values.podSecurityContext.runAsGroup }}"
{{- end -}}
{{- end -}}

{{- define "ning.proberSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- if eq .Values.prober.icmp "raw" }}
  add: [NET_RAW]
{{- end }}
{{- end -}}

{{/* The pod's IP, for binding listeners to it ($(POD_IP) in args). */}}
{{- define "ning.podIPEnv" -}}
- name: POD_IP
  valueFrom:
    fieldRef: {fieldPath: status.podIP}
{{- end -}}
