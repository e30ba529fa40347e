// libyaml (libyaml-dev): the YAML 1.1 scanner and parser the YAML target wraps.
#include <yaml.h>
