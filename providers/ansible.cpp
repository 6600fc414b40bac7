#include "providers/ansible.hpp"
