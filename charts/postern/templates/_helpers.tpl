{{/* The chart name, or nameOverride. */}}
{{- define "postern.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of every object of the release: fullnameOverride, else the
release name when it already contains the chart name, else RELEASE-NAME. */}}
{{- define "postern.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "postern.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "postern.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "postern.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of the controller Pods. */}}
{{- define "postern.selectorLabels" -}}
app.kubernetes.io/name: {{ include "postern.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* The ServiceAccount the Pods run as. */}}
{{- define "postern.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "postern.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The IngressClass served: ingressClassResource.name, else the full name. */}}
{{- define "postern.ingressClassName" -}}
{{- default (include "postern.fullname" .) .Values.controller.ingressClassResource.name -}}
{{- end -}}

{{/* spec.controller of that class: unique per class unless set. */}}
{{- define "postern.controllerValue" -}}
{{- $class := include "postern.ingressClassName" . -}}
{{- if .Values.controller.ingressClassResource.controllerValue -}}
{{- .Values.controller.ingressClassResource.controllerValue -}}
{{- else if eq $class "postern" -}}
postern.dev/ingress-controller
{{- else -}}
{{- printf "postern.dev/ingress-controller-%s" $class -}}
{{- end -}}
{{- end -}}

{{/* The Lease used for leader election. */}}
{{- define "postern.electionID" -}}
{{- default (printf "%s-leader" (include "postern.fullname" .)) .Values.controller.electionID -}}
{{- end -}}

{{/* The admission webhook's Service, Secret and ValidatingWebhookConfiguration. */}}
{{- define "postern.admissionName" -}}
{{- printf "%s-admission" (include "postern.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The one namespace watched with controller.scope.enabled. */}}
{{- define "postern.watchNamespace" -}}
{{- default .Release.Namespace .Values.controller.scope.namespace -}}
{{- end -}}

{{/* The image reference: the digest wins over the tag. */}}
{{- define "postern.image" -}}
{{- $image := .Values.controller.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Replicas a Deployment is asked to keep at least (for the PDB). */}}
{{- define "postern.minimumReplicas" -}}
{{- if .Values.controller.autoscaling.enabled -}}
{{- .Values.controller.autoscaling.minReplicas | int -}}
{{- else -}}
{{- .Values.controller.replicaCount | int -}}
{{- end -}}
{{- end -}}

{{/* Rules for the namespaced kinds, in the ClusterRole or a Role. */}}
{{- define "postern.namespacedRules" -}}
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["list", "watch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["services", "secrets"]
  verbs: ["list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
# ConfigMaps named by the custom-headers annotation, in the Ingress's
# namespace, each watched by name (as ingress-nginx's ClusterRole allows).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* The ports Postern binds (YAML: http, https): 80 and 443 with
controller.bindPrivilegedPorts (the Pod lowers net.ipv4.ip_unprivileged_port_start),
else controller.containerPort. */}}
{{- define "postern.listenPorts" -}}
{{- if .Values.controller.bindPrivilegedPorts -}}
http: 80
https: 443
{{- else -}}
http: {{ .Values.controller.containerPort.http | int }}
https: {{ .Values.controller.containerPort.https | int }}
{{- end -}}
{{- end -}}

{{/* The settings ConfigMap (--configmap): controller.config. */}}
{{- define "postern.settingsName" -}}
{{- printf "%s-settings" (include "postern.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* controller.config as ConfigMap data: one string per key. Numbers are
printed with toYaml, so 31536000 stays 31536000 (quote alone printed
"3.1536e+07", which Postern refuses); booleans become "true"/"false". */}}
{{- define "postern.settingsData" -}}
{{- range $key, $value := .Values.controller.config }}
{{- if kindIs "string" $value }}
{{ $key }}: {{ $value | quote }}
{{- else if or (kindIs "map" $value) (kindIs "slice" $value) }}
{{- fail (printf "controller.config.%s: expected a string, number or boolean" $key) }}
{{- else if not (kindIs "invalid" $value) }}
{{ $key }}: {{ toYaml $value | trim | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Keys Postern applies from the settings ConfigMap without a restart
(Settings.liveKeys in Sources/postern/Settings+Global.swift; a chart test
keeps the two equal). */}}
{{- define "postern.liveSettingKeys" -}}
proxy-body-size whitelist-source-range denylist-source-range block-cidrs ssl-redirect force-ssl-redirect hsts hsts-max-age hsts-include-subdomains hsts-preload
{{- end -}}

{{/* The settings ConfigMap's data without the live keys: its checksum
rolls the Pods when a key that needs a restart changes. */}}
{{- define "postern.restartSettings" -}}
{{- $live := splitList " " (include "postern.liveSettingKeys" .) -}}
{{- $restart := dict -}}
{{- range $key, $value := .Values.controller.config -}}
{{- if not (has $key $live) -}}
{{- $_ := set $restart $key (toString $value) -}}
{{- end -}}
{{- end -}}
{{- toJson $restart -}}
{{- end -}}

{{/* "true" when Postern learns the public ports from the published
Service (it exists and clients reach the Pods through it); empty when the
chart writes them (host network, host ports, or no published Service). */}}
{{- define "postern.learnsPublicPorts" -}}
{{- $c := .Values.controller -}}
{{- if and $c.publishService.enabled $c.service.enabled (not $c.hostNetwork) (not $c.hostPort.enabled) -}}
true
{{- end -}}
{{- end -}}
