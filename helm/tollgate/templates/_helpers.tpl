{{/*
Names and labels. fullname depends on the release and values only, not on .Chart, so a parent
chart that includes tollgate.sidecar with (dict "Values" .Values.tollgate "Release" .Release
"Chart" .Chart) names the same ConfigMap and Secret as this chart rendered as its subchart.
*/}}
{{- define "tollgate.name" -}}
{{- .Values.nameOverride | default "tollgate" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "tollgate.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "tollgate.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.labels" -}}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "tollgate.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/*
What has no sensible default fails the install with a message, instead of deploying a pod that
cannot start. Included by configmap.yaml, which every use of the chart renders.
*/}}
{{- define "tollgate.validate" -}}
{{- $config := .Values.config | default dict }}
{{- $_ := required "image.repository is required: build tollgate's image from the repository's Dockerfile, push it, and name it here" .Values.image.repository }}
{{- if .Values.workload.enabled }}
{{- $_ := required "api.image.repository is required: the image of the API that tollgate protects" .Values.api.image.repository }}
{{- $_ := required "api.image.tag is required: the tag of the API's image" .Values.api.image.tag }}
{{- end }}
{{- if not (or $config.providers $config.providers_dir) }}
{{- fail "config.providers is required: at least one provider (name, issuer, client_id, client_secret_file); see examples/ and README" }}
{{- end }}
{{- if and (contains (printf "%s/" .Values.secrets.mountPath) (toYaml $config)) (not (or .Values.secrets.existingSecret .Values.secrets.create)) }}
{{- fail (printf "config reads files under %s, but no Secret is mounted there: set secrets.existingSecret (or secrets.create)" .Values.secrets.mountPath) }}
{{- end }}
{{- if hasKey $config "listen" }}{{ fail "config.listen is set by the chart from ports.proxy: remove it" }}{{ end }}
{{- if hasKey $config "admin_listen" }}{{ fail "config.admin_listen is set by the chart from ports.admin: remove it" }}{{ end }}
{{- if and .Values.workload.enabled (eq .Values.api.preStop.mode "sleep") .Capabilities (semverCompare "<1.30-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "api.preStop.mode sleep needs Kubernetes 1.30+ (this is %s): set api.preStop.mode to exec (the API image needs a sleep binary) or none" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- end }}

{{- define "tollgate.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "tollgate.fullname" .)) }}
{{- end }}

{{/*
tollgate.yaml: the values' config, with listen/admin_listen from ports (they must match the
container ports and probes) and, when not given, upstream.url pointing at the API in the pod.
*/}}
{{- define "tollgate.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $upstream := deepCopy ($config.upstream | default dict) }}
{{- if not $upstream.url }}
{{- $_ := set $upstream "url" (printf "http://127.0.0.1:%v" .Values.api.port) }}
{{- end }}
{{- $_ := set $config "upstream" $upstream }}
{{- if .Values.sharedCache.url }}
{{- $cache := deepCopy ($config.cache | default dict) }}
{{- $shared := deepCopy ($cache.shared | default dict) }}
{{- $_ := set $shared "url" .Values.sharedCache.url }}
{{- $_ := set $shared "key_prefix" .Values.sharedCache.keyPrefix }}
{{- $_ := set $shared "timeout_ms" (.Values.sharedCache.timeoutMs | int) }}
{{- if .Values.sharedCache.passwordSecret.name }}
{{- $_ := set $shared "password_file" (printf "/var/run/secrets/tollgate-redis/%s" .Values.sharedCache.passwordSecret.key) }}
{{- end }}
{{- $_ := set $cache "shared" $shared }}
{{- $_ := set $config "cache" $cache }}
{{- end }}
{{- $_ := set $config "listen" (printf "0.0.0.0:%v" .Values.ports.proxy) }}
{{- $_ := set $config "admin_listen" (printf "0.0.0.0:%v" .Values.ports.admin) }}
{{- toYaml $config }}
{{- end }}

{{/* SPEC §2 defaults of shutdown, when the values leave them out. */}}
{{- define "tollgate.drainDelaySeconds" -}}
{{- $shutdown := (.Values.config | default dict).shutdown | default dict }}
{{- if hasKey $shutdown "drain_delay_s" }}{{ $shutdown.drain_delay_s | int }}{{ else }}5{{ end }}
{{- end }}

{{- define "tollgate.timeoutSeconds" -}}
{{- $shutdown := (.Values.config | default dict).shutdown | default dict }}
{{- if hasKey $shutdown "timeout_s" }}{{ $shutdown.timeout_s | int }}{{ else }}25{{ end }}
{{- end }}

{{/* The API's preStop sleep: it outlives tollgate's drain delay. */}}
{{- define "tollgate.apiPreStopSeconds" -}}
{{- if not (kindIs "invalid" .Values.api.preStop.seconds) }}{{ .Values.api.preStop.seconds | int }}{{ else }}{{ add1 (include "tollgate.drainDelaySeconds" . | int) }}{{ end }}
{{- end }}

{{/*
Long enough for the whole shutdown, plus 5 s of margin:
- beside the API: tollgate drains (drain_delay_s) and finishes in-flight requests (timeout_s)
  while the API sleeps in its preStop and then stops;
- as a native sidecar: the API stops first (its preStop, then its own shutdown), and only then
  does tollgate get SIGTERM and drain.
*/}}
{{- define "tollgate.terminationGracePeriodSeconds" -}}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) }}
{{- .Values.terminationGracePeriodSeconds | int }}
{{- else }}
{{- $drain := include "tollgate.drainDelaySeconds" . | int }}
{{- $timeout := include "tollgate.timeoutSeconds" . | int }}
{{- $api := 0 }}
{{- if ne .Values.api.preStop.mode "none" }}{{ $api = include "tollgate.apiPreStopSeconds" . | int }}{{ end }}
{{- if .Values.nativeSidecar }}
{{- add $api $drain $timeout 5 }}
{{- else }}
{{- add (max $api (add $drain $timeout)) 5 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pods when tollgate's configuration or created secret change. */}}
{{- define "tollgate.podAnnotations" -}}
checksum/config: {{ include "tollgate.config" . | sha256sum }}
{{- if and (not .Values.secrets.existingSecret) .Values.secrets.create }}
checksum/secret: {{ toYaml .Values.secrets.create | sha256sum }}
{{- end }}
{{- end }}

{{/*
The tollgate container, for this chart's Deployment and for another chart's pod (README, "In a
chart of your own"): under `containers`, or under `initContainers` when nativeSidecar is true
(it then carries restartPolicy: Always, which only an init container may have). Another chart
also takes tollgate.volumes, tollgate.podAnnotations, tollgate.terminationGracePeriodSeconds and
tollgate.apiLifecycle. Set tollgate.image.tag there: the tag defaults to .Chart.AppVersion, which
is then the includer's.
*/}}
{{- define "tollgate.sidecar" -}}
- name: tollgate
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if .Values.nativeSidecar }}
  # A native sidecar (Kubernetes 1.29+): started before the API, stopped after it.
  restartPolicy: Always
  {{- end }}
  args: ["--config", "/etc/tollgate/tollgate.yaml"]
  env:
    - name: TOLLGATE_LOG_LEVEL
      value: {{ .Values.logLevel | quote }}
    {{- with .Values.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: proxy
      containerPort: {{ .Values.ports.proxy }}
      protocol: TCP
    - name: admin
      containerPort: {{ .Values.ports.admin }}
      protocol: TCP
  # No preStop: on SIGTERM tollgate itself turns /readyz to 503 and keeps serving for
  # shutdown.drain_delay_s, which is what a preStop sleep would do.
  startupProbe:
    httpGet: { path: /healthz, port: {{ .Values.ports.admin }} }
    {{- toYaml .Values.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet: { path: /healthz, port: {{ .Values.ports.admin }} }
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet: { path: /readyz, port: {{ .Values.ports.admin }} }
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tollgate-config
      mountPath: /etc/tollgate
      readOnly: true
    {{- if or .Values.secrets.existingSecret .Values.secrets.create }}
    - name: tollgate-secrets
      mountPath: {{ .Values.secrets.mountPath }}
      readOnly: true
    {{- end }}
    {{- if and .Values.sharedCache.url .Values.sharedCache.passwordSecret.name }}
    - name: tollgate-redis-password
      mountPath: /var/run/secrets/tollgate-redis
      readOnly: true
    {{- end }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The pod volumes tollgate.sidecar mounts. */}}
{{- define "tollgate.volumes" -}}
- name: tollgate-config
  configMap:
    name: {{ include "tollgate.fullname" . }}
{{- if or .Values.secrets.existingSecret .Values.secrets.create }}
- name: tollgate-secrets
  secret:
    secretName: {{ include "tollgate.secretName" . }}
    # Readable by the non-root user without an fsGroup; only tollgate mounts it.
    defaultMode: 0444
{{- end }}
{{- if and .Values.sharedCache.url .Values.sharedCache.passwordSecret.name }}
- name: tollgate-redis-password
  secret:
    secretName: {{ .Values.sharedCache.passwordSecret.name }}
    items:
      - { key: {{ .Values.sharedCache.passwordSecret.key | quote }}, path: {{ .Values.sharedCache.passwordSecret.key | quote }} }
    defaultMode: 0444
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The API container's `lifecycle`: a preStop that keeps it up while tollgate drains (requests
tollgate still forwards during shutdown.drain_delay_s need the API). For this chart's API
container and for another chart's, inside its container:
  {{- include "tollgate.apiLifecycle" (dict "Values" .Values.tollgate "Release" .Release "Chart" .Chart) | nindent 10 }}
*/}}
{{- define "tollgate.apiLifecycle" -}}
{{- if ne .Values.api.preStop.mode "none" }}
lifecycle:
  preStop:
    {{- if eq .Values.api.preStop.mode "exec" }}
    exec:
      command: ["sleep", "{{ include "tollgate.apiPreStopSeconds" . }}"]
    {{- else }}
    sleep:
      seconds: {{ include "tollgate.apiPreStopSeconds" . }}
    {{- end }}
{{- end }}
{{- end }}

{{/* The user's API container. */}}
{{- define "tollgate.apiContainer" -}}
- name: {{ .Values.api.name }}
  image: "{{ .Values.api.image.repository }}:{{ .Values.api.image.tag }}"
  imagePullPolicy: {{ .Values.api.image.pullPolicy }}
  {{- with .Values.api.args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.api.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # Not named in the Service: only tollgate reaches it, on 127.0.0.1.
  ports:
    - name: api
      containerPort: {{ .Values.api.port }}
      protocol: TCP
  {{- with .Values.api.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.api.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- include "tollgate.apiLifecycle" . | nindent 2 }}
  {{- with .Values.api.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.api.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
